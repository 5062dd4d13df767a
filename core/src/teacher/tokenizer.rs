//! CLIP's tokenizer from a teacher folder's `tokenizer.json` (Hugging Face `tokenizers`, the
//! file `CLIPTokenizerFast.save_pretrained` writes, or the word-level one `clasp teacher train`
//! writes): `<|startoftext|>` … `<|endoftext|>` around each text, truncated to the text tower's
//! context (77 for OpenAI's CLIP) and padded with `<|endoftext|>`, as `tokenizer(texts,
//! truncation=True, max_length=77, padding="max_length")` does.

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
    /// The tokenizer of the teacher folder `dir`, for a text tower of `context` positions
    /// (`text_config.max_position_embeddings`).
    pub fn from_dir(dir: &Path, context: usize) -> Result<Self> {
        Self::from_file(&dir.join("tokenizer.json"), context)
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

    /// Pads each batch to its longest text only (the text tower is causal and pools at the end
    /// of text, so padding after it changes nothing but the cost).
    pub fn pad_to_longest(mut self) -> Self {
        if let Some(p) = self.inner.get_padding_mut() {
            p.strategy = PaddingStrategy::BatchLongest;
        }
        self
    }

    /// The id of `token`, if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}
