//! Basic layers. Their element-wise parts go through [`crate::ops`]: differentiable fused
//! kernels on the CPU, composed candle ops elsewhere (candle's own fused `layer_norm` and
//! `softmax_last_dim` record no backward and would silently cut the gradient).

use anyhow::Result;
use candle_core::{Module, Tensor};

use super::params::{Init, Scope};
use super::precision::autocast_dtype;

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

    /// The same layer on plain tensors (no op records a backward through it).
    pub fn detached(&self) -> Self {
        Self {
            weight: self.weight.detach(),
            bias: self.bias.as_ref().map(Tensor::detach),
        }
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
        let y = match autocast_dtype(x) {
            None => candle_nn::Linear::new(self.weight.clone(), None).forward(x)?,
            // One product over all leading axes (not a batched product against a broadcast
            // weight), so the weight's gradient is summed inside the f32-accumulating kernel
            // rather than over a bf16 batch axis afterwards.
            Some(dtype) => {
                let (rows, out) = (x.elem_count() / self.in_dim(), self.out_dim());
                let mut shape = x.dims().to_vec();
                *shape
                    .last_mut()
                    .expect("a linear layer's input has a last axis") = out;
                x.reshape((rows, self.in_dim()))?
                    .to_dtype(dtype)?
                    .matmul(&self.weight.to_dtype(dtype)?.t()?)?
                    .to_dtype(x.dtype())?
                    .reshape(shape)?
            }
        };
        match &self.bias {
            Some(b) => crate::ops::bias_add(&y, b),
            None => Ok(y),
        }
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

    pub fn detached(&self) -> Self {
        Self {
            weight: self.weight.detach(),
            bias: self.bias.detach(),
            eps: self.eps,
        }
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        crate::ops::layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

/// Softmax over the last dimension, differentiable.
pub fn softmax_last_dim(x: &Tensor) -> candle_core::Result<Tensor> {
    crate::ops::softmax_last_dim(x)
}

/// Log-softmax over the last dimension, differentiable.
pub fn log_softmax_last_dim(x: &Tensor) -> candle_core::Result<Tensor> {
    crate::ops::log_softmax_last_dim(x)
}

/// Exact (erf) GELU, as PyTorch's `nn.GELU()` default used by timm.
pub fn gelu(x: &Tensor) -> candle_core::Result<Tensor> {
    crate::ops::gelu(x)
}
