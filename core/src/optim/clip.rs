//! Global-norm gradient clipping, as `torch.nn.utils.clip_grad_norm_`.

use anyhow::Result;
use candle_core::Tensor;

/// The L2 norm over all `grads` together.
pub fn global_grad_norm<'a>(grads: impl Iterator<Item = &'a Tensor>) -> Result<f64> {
    let mut sq = 0f64;
    for g in grads {
        sq += g
            .sqr()?
            .sum_all()?
            .to_dtype(candle_core::DType::F64)?
            .to_scalar::<f64>()?;
    }
    Ok(sq.sqrt())
}

/// The factor torch applies: `min(1, max_norm / (norm + 1e-6))`.
pub fn clip_coefficient(total_norm: f64, max_norm: f64) -> f64 {
    (max_norm / (total_norm + 1e-6)).min(1.0)
}

/// Scales a gradient by a clip coefficient (no-op at 1).
pub fn scaled(grad: &Tensor, coef: f64) -> candle_core::Result<Tensor> {
    if coef < 1.0 {
        grad * coef
    } else {
        Ok(grad.clone())
    }
}
