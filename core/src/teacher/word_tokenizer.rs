//! A word-level `tokenizer.json` for a teacher trained on a narrow caption domain: lower-cased
//! words and punctuation runs (`\w+|[^\w\s]+`), each text wrapped in `<|startoftext|>` …
//! `<|endoftext|>` like CLIP's, unknown words → `<|unk|>`. Written with the `tokenizers` crate in
//! Hugging Face's format, so `ClipTokenizer` and transformers' `PreTrainedTokenizerFast` read it.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{anyhow, Result};
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::normalizers::Lowercase;
use tokenizers::pre_tokenizers::whitespace::Whitespace;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

pub const START_OF_TEXT: &str = "<|startoftext|>";
pub const END_OF_TEXT: &str = "<|endoftext|>";
pub const UNKNOWN: &str = "<|unk|>";
/// Ids of the special tokens. The end of text is not 2: transformers reads `eos_token_id == 2` as
/// a legacy config and would pool at the highest id instead.
pub const START_ID: u32 = 0;
pub const END_ID: u32 = 1;
pub const UNKNOWN_ID: u32 = 2;

/// Words of a text as the tokenizer splits them (for building the vocabulary).
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut cur_is_word = false;
    for ch in text.to_lowercase().chars() {
        if ch.is_whitespace() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        let is_word = ch.is_alphanumeric() || ch == '_';
        if !cur.is_empty() && is_word != cur_is_word {
            out.push(std::mem::take(&mut cur));
        }
        cur_is_word = is_word;
        cur.push(ch);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A tokenizer whose vocabulary is every word of `texts` seen at least `min_count` times,
/// most frequent first (ties alphabetical, so the file is deterministic).
pub fn build(texts: &[String], min_count: usize) -> Result<Tokenizer> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for t in texts {
        for w in words(t) {
            *counts.entry(w).or_default() += 1;
        }
    }
    let mut ranked: Vec<(String, usize)> = counts
        .into_iter()
        .filter(|(_, c)| *c >= min_count)
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut vocab: HashMap<String, u32> = HashMap::new();
    vocab.insert(START_OF_TEXT.into(), START_ID);
    vocab.insert(END_OF_TEXT.into(), END_ID);
    vocab.insert(UNKNOWN.into(), UNKNOWN_ID);
    for (i, (w, _)) in ranked.into_iter().enumerate() {
        vocab.insert(w, 3 + i as u32);
    }
    let model = WordLevel::builder()
        .vocab(vocab.into_iter().collect())
        .unk_token(UNKNOWN.into())
        .build()
        .map_err(|e| anyhow!("word vocabulary: {e}"))?;
    let template = TemplateProcessing::builder()
        .try_single(format!("{START_OF_TEXT} $A {END_OF_TEXT}"))
        .map_err(|e| anyhow!("template: {e}"))?
        .special_tokens(vec![
            (START_OF_TEXT.to_string(), START_ID),
            (END_OF_TEXT.to_string(), END_ID),
        ])
        .build()
        .map_err(|e| anyhow!("template: {e}"))?;
    let mut tok = Tokenizer::new(model);
    tok.with_normalizer(Some(Lowercase))
        .map_err(|e| anyhow!("normalizer: {e}"))?;
    tok.with_pre_tokenizer(Some(Whitespace {}));
    tok.with_post_processor(Some(template));
    tok.add_special_tokens([
        AddedToken::from(START_OF_TEXT, true),
        AddedToken::from(END_OF_TEXT, true),
        AddedToken::from(UNKNOWN, true),
    ])
    .map_err(|e| anyhow!("special tokens: {e}"))?;
    Ok(tok)
}

/// Writes `tokenizer.json` into `dir`.
pub fn save(tok: &Tokenizer, dir: &Path) -> Result<()> {
    let path = dir.join("tokenizer.json");
    tok.save(&path, false)
        .map_err(|e| anyhow!("writing {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_like_the_whitespace_pre_tokenizer() {
        assert_eq!(
            words("A long-sleeved shirt, Seen"),
            vec!["a", "long", "-", "sleeved", "shirt", ",", "seen"]
        );
    }

    #[test]
    fn texts_are_wrapped_and_unknown_words_marked() {
        let texts = vec!["a red shirt".to_string(), "a blue shirt".to_string()];
        let tok = build(&texts, 1).unwrap();
        let enc = tok.encode("A red hat", true).unwrap();
        let ids = enc.get_ids();
        assert_eq!(ids.len(), 5);
        assert_eq!((ids[0], ids[4]), (START_ID, END_ID));
        // "a" and "shirt" are most frequent (ids 3, 4 in alphabetical tie order), then blue, red.
        assert_eq!(tok.token_to_id("a"), Some(3));
        assert_eq!(ids[1], 3);
        assert_eq!(ids[2], tok.token_to_id("red").unwrap());
        assert_eq!(ids[3], UNKNOWN_ID);
        // The saved file loads back to the same ids.
        let dir = tempfile::tempdir().unwrap();
        save(&tok, dir.path()).unwrap();
        let back = Tokenizer::from_file(dir.path().join("tokenizer.json")).unwrap();
        assert_eq!(back.encode("A red hat", true).unwrap().get_ids(), ids);
    }
}
