//! Differentiable fused CPU kernels for the ops a ViT training step spends its element-wise time
//! in (layer norm, softmax, log-softmax, GELU, bias add) and for multi-head attention, each with
//! its backward. On other devices or dtypes — and everywhere when `CLASP_COMPOSED_OPS=1`, for
//! benchmarking and bisecting — the same functions run the composed candle reference in
//! [`reference`], which the tests check the fused kernels against (values and gradients).

mod attention;
mod bias_add;
mod cpu;
mod fast_math;
mod gelu;
pub(crate) mod im2col;
mod layer_norm;
pub mod parity;
pub mod reference;
mod simd;
mod softmax;
pub mod train_parity;

use std::cell::Cell;
use std::sync::OnceLock;

use candle_core::{DType, Device, Result, Tensor};

thread_local! {
    static COMPOSED_HERE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the composed reference ops on this thread (the CPU reference run of
/// `clasp device-check`); the previous setting comes back even if `f` panics.
pub fn with_composed_ops<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            COMPOSED_HERE.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(COMPOSED_HERE.with(|c| c.replace(true)));
    f()
}

/// Whether the fused kernels serve `t` (f32 on the CPU, not switched off).
pub fn fused_for(t: &Tensor) -> bool {
    static COMPOSED: OnceLock<bool> = OnceLock::new();
    let composed = *COMPOSED.get_or_init(|| {
        std::env::var("CLASP_COMPOSED_OPS").is_ok_and(|v| !v.is_empty() && v != "0")
    }) || COMPOSED_HERE.with(Cell::get);
    !composed && matches!(t.device(), Device::Cpu) && t.dtype() == DType::F32
}

/// Layer normalisation over the last dimension with weight and bias `[D]`.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    if fused_for(x) && weight.dtype() == DType::F32 && bias.dtype() == DType::F32 {
        x.contiguous()?.apply_op3(
            &weight.contiguous()?,
            &bias.contiguous()?,
            layer_norm::LayerNormOp { eps: eps as f32 },
        )
    } else {
        reference::layer_norm(x, weight, bias, eps)
    }
}

/// Softmax over the last dimension.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    scaled_softmax_last_dim(x, 1.0)
}

/// softmax(`scale` · x) over the last dimension (attention's scores with scale 1/√d).
pub fn scaled_softmax_last_dim(x: &Tensor, scale: f64) -> Result<Tensor> {
    if fused_for(x) && scale > 0.0 {
        let op = softmax::SoftmaxOp {
            log: false,
            scale: scale as f32,
        };
        x.contiguous()?.apply_op1(op)
    } else if scale == 1.0 {
        reference::softmax_last_dim(x)
    } else {
        reference::softmax_last_dim(&(x * scale)?)
    }
}

/// Log-softmax over the last dimension.
pub fn log_softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if fused_for(x) {
        let op = softmax::SoftmaxOp {
            log: true,
            scale: 1.0,
        };
        x.contiguous()?.apply_op1(op)
    } else {
        reference::log_softmax_last_dim(x)
    }
}

/// Exact (erf) GELU.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    if fused_for(x) {
        x.contiguous()?.apply_op1(gelu::GeluOp { quick: false })
    } else {
        x.gelu_erf()
    }
}

/// CLIP's quick GELU, x·σ(1.702x).
pub fn quick_gelu(x: &Tensor) -> Result<Tensor> {
    if fused_for(x) {
        x.contiguous()?.apply_op1(gelu::GeluOp { quick: true })
    } else {
        reference::quick_gelu(x)
    }
}

/// `x + bias`, the bias `[D]` broadcast over the leading dimensions of `x` `[…, D]`.
pub fn bias_add(x: &Tensor, bias: &Tensor) -> Result<Tensor> {
    if fused_for(x) && bias.dtype() == DType::F32 && bias.rank() == 1 {
        x.contiguous()?
            .apply_op2(&bias.contiguous()?, bias_add::BiasAddOp)
    } else {
        x.broadcast_add(bias)
    }
}

/// Multi-head self-attention on a packed projection `[B, N, 3·H·Dh]` (timm's `attn.qkv` output:
/// q, k, v, each heads × head width): softmax(`scale`·q·kᵀ)·v per head, heads side by side in
/// `[B, N, H·Dh]`.
pub fn attention(qkv: &Tensor, heads: usize, scale: f64) -> Result<Tensor> {
    if fused_for(qkv) && scale > 0.0 {
        let op = attention::AttentionOp {
            heads,
            scale: scale as f32,
        };
        qkv.contiguous()?.apply_op1(op)
    } else {
        reference::attention(qkv, heads, scale)
    }
}

#[cfg(test)]
mod tests;
