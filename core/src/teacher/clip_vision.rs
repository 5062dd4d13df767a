//! CLIP's vision tower (`vision_model.*`): patch embedding (a bias-free convolution, applied as a
//! matmul over non-overlapping patches), class token, position embedding, `pre_layrnorm` (sic,
//! transformers' name), the encoder, and `post_layernorm` on the class token.
//!
//! Person crops are not square: for an input other than `image_size`², the position embedding of
//! the patch grid is resampled bicubically to the input's grid, exactly as transformers does with
//! `interpolate_pos_encoding=True` (plain bicubic, not anti-aliased) — no padding.

use anyhow::{bail, Result};
use candle_core::{Module, Tensor};

use super::clip_config::ClipConfig;
use super::clip_encoder::{ClipEncoder, EncoderShape};
use crate::model::layers::{LayerNorm, Linear};
use crate::model::params::{Init, Scope};
use crate::model::pos_embed::{resample_grid_with, GridResampling};

#[derive(Clone, Debug)]
pub struct ClipVision {
    pub class_embedding: Tensor,
    /// `[d, C, p, p]`
    pub patch_embedding: Tensor,
    /// `[1 + g², d]`
    pub position_embedding: Tensor,
    pub pre_layrnorm: LayerNorm,
    pub encoder: ClipEncoder,
    pub post_layernorm: LayerNorm,
    pub patch_size: usize,
    /// The square patch grid the position embedding was trained for.
    pub grid: usize,
}

impl ClipVision {
    pub fn new(s: &Scope, cfg: &ClipConfig) -> Result<Self> {
        let v = &cfg.vision_config;
        let (d, p) = (v.hidden_size, v.patch_size);
        let grid = v.image_size / p;
        let e = s.pp("embeddings");
        Ok(Self {
            // transformers: std d^-½ for the class embedding.
            class_embedding: e.get(
                "class_embedding",
                &[d],
                Init::TruncNormal((d as f32).powf(-0.5)),
            )?,
            patch_embedding: e.pp("patch_embedding").get(
                "weight",
                &[d, v.num_channels, p, p],
                Init::TruncNormal(0.02),
            )?,
            position_embedding: e.pp("position_embedding").get(
                "weight",
                &[1 + grid * grid, d],
                Init::TruncNormal(0.02),
            )?,
            pre_layrnorm: LayerNorm::new(&s.pp("pre_layrnorm"), d, v.layer_norm_eps)?,
            encoder: ClipEncoder::new(
                &s.pp("encoder"),
                &EncoderShape {
                    dim: d,
                    hidden: v.intermediate_size,
                    heads: v.num_attention_heads,
                    layers: v.num_hidden_layers,
                    eps: v.layer_norm_eps,
                    act: cfg.vision_activation(),
                },
            )?,
            post_layernorm: LayerNorm::new(&s.pp("post_layernorm"), d, v.layer_norm_eps)?,
            patch_size: p,
            grid,
        })
    }

    /// Class token + patch tokens with their position embeddings, `[B, 1 + gh·gw, d]`.
    pub fn embed(&self, pixels: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = pixels.dims4()?;
        let p = self.patch_size;
        let (d, wc) = (self.patch_embedding.dim(0)?, self.patch_embedding.dim(1)?);
        if c != wc || h % p != 0 || w % p != 0 || h == 0 || w == 0 {
            bail!(
                "images of shape {:?}: the vision tower takes [B, {wc}, H, W] with H and W \
                 multiples of {p}",
                pixels.dims()
            );
        }
        let (gh, gw) = (h / p, w / p);
        let patches = pixels
            .reshape((b, c, gh, p, gw, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .reshape((b, gh * gw, c * p * p))?;
        let proj = Linear::from_tensors(self.patch_embedding.reshape((d, c * p * p))?, None);
        let x = proj.forward(&patches)?;
        let pos = &self.position_embedding;
        let grid_pos = resample_grid_with(
            &pos.narrow(0, 1, pos.dim(0)? - 1)?,
            (self.grid, self.grid),
            (gh, gw),
            GridResampling::Bicubic,
        )?;
        let x = x.broadcast_add(&grid_pos.unsqueeze(0)?)?;
        let cls = (&self.class_embedding + pos.get(0)?)?
            .reshape((1, 1, d))?
            .broadcast_as((b, 1, d))?;
        Ok(Tensor::cat(&[&cls, &x], 1)?)
    }

    /// The last hidden states `[B, 1 + gh·gw, d]` (before `post_layernorm`).
    pub fn hidden_states(&self, pixels: &Tensor) -> Result<Tensor> {
        let x = self.pre_layrnorm.forward(&self.embed(pixels)?)?;
        Ok(self.encoder.forward(&x, false)?)
    }

    /// MaskCLIP's dense patch features `[B, gh·gw, d]`: every block but the last as usual, then
    /// the last block's value path alone — `out_proj(v_proj(layer_norm1(x)))`, no query-key
    /// attention, no residual, no MLP — and `post_layernorm`, so each patch lands in the space
    /// the class token is pooled in (project with `visual_projection` to compare with text).
    pub fn dense(&self, pixels: &Tensor) -> Result<Tensor> {
        Ok(self.dense_and_pooled(pixels)?.0)
    }

    /// [`Self::dense`] and [`Self::pooled`] from one pass through the shared blocks (what
    /// labelling needs: part maps and attributes of the same images).
    pub fn dense_and_pooled(&self, pixels: &Tensor) -> Result<(Tensor, Tensor)> {
        let layers = &self.encoder.layers;
        let Some((last, body)) = layers.split_last() else {
            bail!("a vision tower without layers has no dense features");
        };
        let mut x = self.pre_layrnorm.forward(&self.embed(pixels)?)?;
        for l in body {
            x = l.forward(&x, false)?;
        }
        let a = &last.self_attn;
        let v = a
            .out_proj
            .forward(&a.v_proj.forward(&last.layer_norm1.forward(&x)?)?)?;
        let patches = v.narrow(1, 1, v.dim(1)? - 1)?;
        let dense = self.post_layernorm.forward(&patches)?;
        let h = last.forward(&x, false)?;
        let pooled = self
            .post_layernorm
            .forward(&h.narrow(1, 0, 1)?.squeeze(1)?)?;
        Ok((dense, pooled))
    }

    /// The pooled image feature `[B, d]`: `post_layernorm` of the class token.
    pub fn pooled(&self, pixels: &Tensor) -> Result<Tensor> {
        let h = self.hidden_states(pixels)?;
        Ok(self
            .post_layernorm
            .forward(&h.narrow(1, 0, 1)?.squeeze(1)?)?)
    }
}
