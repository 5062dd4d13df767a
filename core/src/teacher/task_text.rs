//! Task prompts seeded by the teacher (DESIGN §3): e_t is the teacher's text embedding of the
//! task's description sentence, L2-normalised. It is stored in every checkpoint
//! (`prompts.text_embed.<task>`), so fine-tuning later needs no teacher.

use std::path::Path;

use anyhow::{bail, Result};
use candle_core::{Device, Tensor};

use super::clip::Clip;
use super::pseudo_labels::l2_normalize;
use super::tokenizer::ClipTokenizer;

/// What the pre-training tasks of DESIGN §5 are, in words.
pub fn pretrain_task_description(task: &str) -> Option<&'static str> {
    Some(match task {
        "ssl" => "a photo of a person",
        "part" => "the body parts of a person: head, upper body, arms, lower body and feet",
        "attr" => "the attributes of a person: gender, age, clothes, shoes and bags",
        _ => return None,
    })
}

/// A teacher's text tower, loaded once, embedding task descriptions.
pub struct TaskTextEmbedder {
    clip: Clip,
    tok: ClipTokenizer,
}

impl TaskTextEmbedder {
    /// The teacher in `dir`; its projection width must be the prompts' `text_dim`.
    pub fn load(dir: &Path, text_dim: usize) -> Result<Self> {
        let clip = Clip::load(dir, &Device::Cpu)?;
        if clip.config.projection_dim != text_dim {
            bail!(
                "config key `model.prompts.text_dim` = {text_dim}, but the teacher {} embeds \
                 text in {} dimensions (its `projection_dim`): set them equal",
                dir.display(),
                clip.config.projection_dim
            );
        }
        let tok = ClipTokenizer::from_dir(dir, clip.config.text_config.max_position_embeddings)?;
        Ok(Self { clip, tok })
    }

    /// e_t of `sentence`, `[text_dim]`, unit length.
    pub fn embed(&self, sentence: &str) -> Result<Tensor> {
        let ids = self.tok.encode(&[sentence])?;
        Ok(l2_normalize(&self.clip.text_embeds(&ids)?.detach())?.squeeze(0)?)
    }
}
