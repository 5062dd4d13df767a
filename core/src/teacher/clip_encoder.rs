//! CLIP's transformer encoder (`encoder.layers.{i}` in transformers' names): pre-norm blocks of
//! multi-head self-attention (separate q/k/v projections) and an MLP, with the causal mask in
//! the text tower. Composed of differentiable ops, so the same code trains a teacher.

use anyhow::Result;
use candle_core::{Module, Tensor};

use super::clip_config::Activation;
use crate::model::layers::{LayerNorm, Linear};
use crate::model::params::Scope;
use crate::ops::{attention, scaled_softmax_last_dim};

#[derive(Clone, Debug)]
pub struct ClipAttention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub out_proj: Linear,
    pub num_heads: usize,
}

impl ClipAttention {
    /// Fresh weights as transformers' `CLIPPreTrainedModel._init_weights`: q, k, v with std
    /// d^-½·(2L)^-½, the output projection d^-½ (`depth` = L, the tower's layer count).
    fn new(s: &Scope, dim: usize, num_heads: usize, depth: usize) -> Result<Self> {
        let d = (dim as f32).powf(-0.5);
        let in_std = d * ((2 * depth) as f32).powf(-0.5);
        Ok(Self {
            q_proj: Linear::with_std(&s.pp("q_proj"), dim, dim, true, in_std)?,
            k_proj: Linear::with_std(&s.pp("k_proj"), dim, dim, true, in_std)?,
            v_proj: Linear::with_std(&s.pp("v_proj"), dim, dim, true, in_std)?,
            out_proj: Linear::with_std(&s.pp("out_proj"), dim, dim, true, d)?,
            num_heads,
        })
    }

    /// `[B, n, d]` → `[B, h, n, d/h]`.
    fn heads(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, n, d) = x.dims3()?;
        x.reshape((b, n, self.num_heads, d / self.num_heads))?
            .transpose(1, 2)?
            .contiguous()
    }

    fn forward(&self, x: &Tensor, causal: bool) -> candle_core::Result<Tensor> {
        let (b, n, d) = x.dims3()?;
        let scale = 1.0 / ((d / self.num_heads) as f64).sqrt();
        if !causal {
            // The vision tower: q, k, v packed side by side as timm's `qkv` output, for the
            // fused attention (one copy instead of three, no transposes).
            let qkv = Tensor::cat(
                &[
                    self.q_proj.forward(x)?,
                    self.k_proj.forward(x)?,
                    self.v_proj.forward(x)?,
                ],
                2,
            )?;
            return self
                .out_proj
                .forward(&attention(&qkv, self.num_heads, scale)?);
        }
        let q = self.heads(&self.q_proj.forward(x)?)?;
        let k = self.heads(&self.k_proj.forward(x)?)?;
        let v = self.heads(&self.v_proj.forward(x)?)?;
        // The text tower: token i sees tokens 0..=i.
        let mask: Vec<f32> = (0..n * n)
            .map(|i| {
                if i % n > i / n {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, (n, n), x.device())?.to_dtype(x.dtype())?;
        let scores = q.matmul(&k.t()?)?.broadcast_add(&mask)?;
        // transformers scales q; scaling the scores inside the softmax is the same product.
        let y = scaled_softmax_last_dim(&scores, scale)?
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((b, n, d))?;
        self.out_proj.forward(&y)
    }
}

#[derive(Clone, Debug)]
pub struct ClipLayer {
    pub self_attn: ClipAttention,
    pub layer_norm1: LayerNorm,
    pub fc1: Linear,
    pub fc2: Linear,
    pub layer_norm2: LayerNorm,
    pub act: Activation,
}

impl ClipLayer {
    fn new(
        s: &Scope,
        dim: usize,
        hidden: usize,
        heads: usize,
        depth: usize,
        eps: f64,
        act: Activation,
    ) -> Result<Self> {
        // transformers' CLIPMLP init: fc1 std (2d)^-½, fc2 d^-½·(2L)^-½.
        let fc1_std = ((2 * dim) as f32).powf(-0.5);
        let fc2_std = (dim as f32).powf(-0.5) * ((2 * depth) as f32).powf(-0.5);
        Ok(Self {
            self_attn: ClipAttention::new(&s.pp("self_attn"), dim, heads, depth)?,
            layer_norm1: LayerNorm::new(&s.pp("layer_norm1"), dim, eps)?,
            fc1: Linear::with_std(&s.pp("mlp").pp("fc1"), dim, hidden, true, fc1_std)?,
            fc2: Linear::with_std(&s.pp("mlp").pp("fc2"), hidden, dim, true, fc2_std)?,
            layer_norm2: LayerNorm::new(&s.pp("layer_norm2"), dim, eps)?,
            act,
        })
    }

    pub fn mlp(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.fc2.forward(&self.act.apply(&self.fc1.forward(x)?)?)
    }

    pub fn forward(&self, x: &Tensor, causal: bool) -> candle_core::Result<Tensor> {
        let x = (x + self
            .self_attn
            .forward(&self.layer_norm1.forward(x)?, causal)?)?;
        &x + self.mlp(&self.layer_norm2.forward(&x)?)?
    }
}

#[derive(Clone, Debug)]
pub struct ClipEncoder {
    pub layers: Vec<ClipLayer>,
}

/// Sizes of one tower's encoder.
pub struct EncoderShape {
    pub dim: usize,
    pub hidden: usize,
    pub heads: usize,
    pub layers: usize,
    pub eps: f64,
    pub act: Activation,
}

impl ClipEncoder {
    pub fn new(s: &Scope, shape: &EncoderShape) -> Result<Self> {
        let layers = (0..shape.layers)
            .map(|i| {
                ClipLayer::new(
                    &s.pp("layers").pp(i),
                    shape.dim,
                    shape.hidden,
                    shape.heads,
                    shape.layers,
                    shape.eps,
                    shape.act,
                )
            })
            .collect::<Result<_>>()?;
        Ok(Self { layers })
    }

    pub fn forward(&self, x: &Tensor, causal: bool) -> candle_core::Result<Tensor> {
        let mut x = x.clone();
        for l in &self.layers {
            x = l.forward(&x, causal)?;
        }
        Ok(x)
    }
}
