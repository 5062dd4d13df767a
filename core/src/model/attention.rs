//! Multi-head self-attention with timm's `attn.qkv` / `attn.proj` layout.

use anyhow::Result;
use candle_core::{Module, Tensor};

use super::layers::Linear;
use super::params::Scope;
use crate::ops::attention;

#[derive(Clone, Debug)]
pub struct Attention {
    pub qkv: Linear,
    pub proj: Linear,
    pub num_heads: usize,
    scale: f64,
}

impl Attention {
    pub fn new(scope: &Scope, dim: usize, num_heads: usize, qkv_bias: bool) -> Result<Self> {
        Ok(Self {
            qkv: Linear::new(&scope.pp("qkv"), dim, 3 * dim, qkv_bias)?,
            proj: Linear::new(&scope.pp("proj"), dim, dim, true)?,
            num_heads,
            scale: 1.0 / ((dim / num_heads) as f64).sqrt(),
        })
    }

    pub fn detached(&self) -> Self {
        Self {
            qkv: self.qkv.detached(),
            proj: self.proj.detached(),
            ..self.clone()
        }
    }

    /// Multiply-adds per image for `n` tokens of width `d`.
    pub fn flops(&self, n: usize) -> u64 {
        let d = self.proj.out_dim() as u64;
        let n = n as u64;
        // qkv + proj projections, then q·kᵀ and attn·v.
        n * d * 3 * d + n * d * d + 2 * n * n * d
    }
}

impl Module for Attention {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = attention(&self.qkv.forward(x)?, self.num_heads, self.scale)?;
        self.proj.forward(&y)
    }
}
