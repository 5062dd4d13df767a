//! CLIP's text tower (`text_model.*`): token + position embeddings, the causal encoder, the final
//! layer norm, and the pooled feature at each sequence's end-of-text token.

use anyhow::{bail, Result};
use candle_core::{Module, Tensor};

use super::clip_config::ClipConfig;
use super::clip_encoder::{ClipEncoder, EncoderShape};
use crate::model::layers::LayerNorm;
use crate::model::params::{Init, Scope};

#[derive(Clone, Debug)]
pub struct ClipText {
    pub token_embedding: Tensor,
    pub position_embedding: Tensor,
    pub encoder: ClipEncoder,
    pub final_layer_norm: LayerNorm,
    /// transformers' legacy rule (`eos_token_id == 2`): pool at the highest token id.
    eos_token_id: i64,
}

impl ClipText {
    pub fn new(s: &Scope, cfg: &ClipConfig) -> Result<Self> {
        let t = &cfg.text_config;
        let e = s.pp("embeddings");
        Ok(Self {
            token_embedding: e.pp("token_embedding").get(
                "weight",
                &[t.vocab_size, t.hidden_size],
                Init::TruncNormal(0.02),
            )?,
            position_embedding: e.pp("position_embedding").get(
                "weight",
                &[t.max_position_embeddings, t.hidden_size],
                Init::TruncNormal(0.01),
            )?,
            encoder: ClipEncoder::new(
                &s.pp("encoder"),
                &EncoderShape {
                    dim: t.hidden_size,
                    hidden: t.intermediate_size,
                    heads: t.num_attention_heads,
                    layers: t.num_hidden_layers,
                    eps: t.layer_norm_eps,
                    act: cfg.text_activation(),
                },
            )?,
            final_layer_norm: LayerNorm::new(
                &s.pp("final_layer_norm"),
                t.hidden_size,
                t.layer_norm_eps,
            )?,
            eos_token_id: t.eos_token_id,
        })
    }

    /// Where each sequence is pooled: its first end-of-text token, or (legacy configs) its
    /// highest token id, as transformers' `CLIPTextTransformer` does.
    pub fn pool_positions(&self, ids: &[Vec<u32>]) -> Result<Vec<usize>> {
        ids.iter()
            .enumerate()
            .map(|(row, seq)| {
                if self.eos_token_id == 2 {
                    let max = seq.iter().copied().max().unwrap_or(0);
                    Ok(seq.iter().position(|t| *t == max).unwrap_or(0))
                } else {
                    match seq.iter().position(|t| *t as i64 == self.eos_token_id) {
                        Some(p) => Ok(p),
                        None => bail!(
                            "text {row} has no end-of-text token (id {})",
                            self.eos_token_id
                        ),
                    }
                }
            })
            .collect()
    }

    /// Per-token hidden states after the final layer norm, `[B, n, d]`, for token ids `[B, n]`.
    pub fn hidden_states(&self, ids: &[Vec<u32>]) -> Result<Tensor> {
        let n = ids.first().map_or(0, |s| s.len());
        if n == 0 || ids.iter().any(|s| s.len() != n) {
            bail!("token sequences must be non-empty and of one length (pad them)");
        }
        let max = self.position_embedding.dim(0)?;
        if n > max {
            bail!("{n} tokens: the text tower has {max} positions (truncate to {max})");
        }
        let flat: Vec<u32> = ids.iter().flatten().copied().collect();
        let vocab = self.token_embedding.dim(0)?;
        if let Some(bad) = flat.iter().find(|t| **t as usize >= vocab) {
            bail!("token id {bad} is outside the vocabulary of {vocab}");
        }
        let dev = self.token_embedding.device();
        let idx = Tensor::from_vec(flat, ids.len() * n, dev)?;
        let d = self.token_embedding.dim(1)?;
        let x = self
            .token_embedding
            .index_select(&idx, 0)?
            .reshape((ids.len(), n, d))?
            .broadcast_add(&self.position_embedding.narrow(0, 0, n)?)?;
        let x = self.encoder.forward(&x, true)?;
        Ok(self.final_layer_norm.forward(&x)?)
    }

    /// The pooled text feature `[B, d]` (before the projection).
    pub fn pooled(&self, ids: &[Vec<u32>]) -> Result<Tensor> {
        let h = self.hidden_states(ids)?;
        let pos = self.pool_positions(ids)?;
        let rows = pos
            .iter()
            .enumerate()
            .map(|(b, p)| h.get(b)?.get(*p))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Tensor::stack(&rows, 0)?)
    }
}
