//! CLIP's tokenizer from a teacher folder's `tokenizer.json` (Hugging Face `tokenizers`, the
//! file `CLIPTokenizerFast.save_pretrained` writes): lower-cased byte-level BPE with
//! `<|startoftext|>` … `<|endoftext|>` around each text, truncated to the 77-token context and
//! padded with `<|endoftext|>`, as `tokenizer(texts, truncation=True, max_length=77,
//! padding="max_length")` does.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// CLIP's text context.
pub const CONTEXT: usize = 77;
const END_OF_TEXT: &str = "<|endoftext|>";

pub struct ClipTokenizer {
    inner: Tokenizer,
}

impl ClipTokenizer {
    /// The tokenizer of the teacher folder `dir`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        Self::from_file(&dir.join("tokenizer.json"), CONTEXT)
    }

    /// A tokenizer from a `tokenizer.json`, truncating and padding to `context` tokens.
    pub fn from_file(path: &Path, context: usize) -> Result<Self> {
        if !path.is_file() {
            anyhow::bail!(
                "{} does not exist: the teacher folder needs CLIP's tokenizer.json",
                path.display()
            );
        }
        let mut inner =
            Tokenizer::from_file(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let pad_id = inner
            .token_to_id(END_OF_TEXT)
            .with_context(|| format!("{}: the vocabulary has no {END_OF_TEXT}", path.display()))?;
        inner
            .with_truncation(Some(TruncationParams {
                max_length: context,
                ..Default::default()
            }))
            .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        inner.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::Fixed(context),
            pad_id,
            pad_token: END_OF_TEXT.into(),
            ..Default::default()
        }));
        Ok(Self { inner })
    }

    /// Token ids of each text, `context` long.
    pub fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        let encodings = self
            .inner
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| anyhow!("tokenizing: {e}"))?;
        Ok(encodings.iter().map(|e| e.get_ids().to_vec()).collect())
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}
