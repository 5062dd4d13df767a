//! Basic layers written with differentiable candle ops only.
//!
//! candle's fused `layer_norm` and `softmax_last_dim` record no backward and silently cut the
//! gradient, so every layer used in training is composed of primitive ops here.

use anyhow::Result;
use candle_core::{Module, Tensor, D};

use super::params::{Init, Scope};

/// timm's default init for linear weights.
pub const LINEAR_STD: f32 = 0.02;

/// `y = x Wᵀ + b` with timm/PyTorch weight layout `[out, in]`.
#[derive(Clone, Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    pub fn new(scope: &Scope, in_dim: usize, out_dim: usize, bias: bool) -> Result<Self> {
        Self::with_std(scope, in_dim, out_dim, bias, LINEAR_STD)
    }

    /// A layer whose fresh weight has standard deviation `std` (bias zero).
    pub fn with_std(
        scope: &Scope,
        in_dim: usize,
        out_dim: usize,
        bias: bool,
        std: f32,
    ) -> Result<Self> {
        let weight = scope.get("weight", &[out_dim, in_dim], Init::TruncNormal(std))?;
        let bias = if bias {
            Some(scope.get("bias", &[out_dim], Init::Zeros)?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    pub fn out_dim(&self) -> usize {
        self.weight.dims()[0]
    }

    pub fn in_dim(&self) -> usize {
        self.weight.dims()[1]
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::Linear::new(self.weight.clone(), self.bias.clone()).forward(x)
    }
}

/// Layer normalisation over the last dimension, differentiable.
#[derive(Clone, Debug)]
pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f64,
}

impl LayerNorm {
    pub fn new(scope: &Scope, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: scope.get("weight", &[dim], Init::Ones)?,
            bias: scope.get("bias", &[dim], Init::Zeros)?,
            eps,
        })
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        normed
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
    }
}

/// Softmax over the last dimension, differentiable (the max is detached: softmax ignores shifts).
pub fn softmax_last_dim(x: &Tensor) -> candle_core::Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// Log-softmax over the last dimension, differentiable (the shift is detached).
pub fn log_softmax_last_dim(x: &Tensor) -> candle_core::Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let shifted = x.broadcast_sub(&max)?;
    shifted.broadcast_sub(&shifted.exp()?.sum_keepdim(D::Minus1)?.log()?)
}

/// Exact (erf) GELU, as PyTorch's `nn.GELU()` default used by timm.
pub fn gelu(x: &Tensor) -> candle_core::Result<Tensor> {
    x.gelu_erf()
}
