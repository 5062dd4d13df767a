//! CLIP's tokenizer from `tokenizer.json` gives transformers' ids (fixture:
//! `scripts/fixtures/make_clip_tokenizer.py`, where the slow and fast transformers tokenizers
//! agree): punctuation, digits, accents, CJK and emoji, odd whitespace, the empty string, and a
//! text longer than the 77-token context (truncated, end-of-text kept last).

use clasp_core::teacher::tokenizer::{ClipTokenizer, CONTEXT};

use crate::common;

#[test]
fn token_ids_equal_transformers_clip_tokenizer() {
    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::fixture("clip_tokenizer_ids.json")).unwrap(),
    )
    .unwrap();
    let tok = ClipTokenizer::from_dir(&common::fixture("clip_tokenizer"), CONTEXT).unwrap();
    assert_eq!(tok.vocab_size(), 49408);
    let sentences: Vec<&str> = golden["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let ours = tok.encode(&sentences).unwrap();
    for ((s, got), want) in sentences
        .iter()
        .zip(&ours)
        .zip(golden["input_ids"].as_array().unwrap())
    {
        let want: Vec<u32> = want
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(got.len(), CONTEXT);
        assert_eq!(got, &want, "{s:?}");
    }
    // The over-long text fills the context and still ends with end-of-text.
    assert_eq!(ours.last().unwrap()[CONTEXT - 1], 49407);
}

#[test]
fn a_folder_without_a_tokenizer_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let e = ClipTokenizer::from_dir(dir.path(), CONTEXT)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("tokenizer.json") && e.contains(&dir.path().display().to_string()),
        "{e}"
    );
}
