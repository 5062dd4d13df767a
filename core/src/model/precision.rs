//! Mixed precision as PyTorch's `torch.autocast(dtype=torch.bfloat16)` does it: the weights, their
//! gradients and the optimiser's moments stay f32; inside [`Precision::scope`] every [`Linear`]
//! (the patch embedding, attention's projections, the MLPs and PC-MoE's merged experts, the
//! heads built from it) multiplies in bf16 — its input and weight cast on the way in, its output
//! cast back to f32 before the bias. Everything else runs in f32: layer norms, softmax,
//! attention's scores, GELU, the residual stream and the losses (autocast keeps norms, softmax
//! and losses in f32 too; it would run GELU and the residual adds in bf16).
//!
//! The backward needs no scope: candle records the casts, so a weight's gradient is the bf16
//! product's gradient cast back to f32. bf16 has f32's exponent range, so no loss scaling.
//! candle's CPU has no bf16 matrix kernel (it widens to f32 and rounds the product): on the CPU
//! bf16 follows the numerics, not the speed, of a GPU run.
//!
//! [`Linear`]: super::layers::Linear

use std::cell::Cell;

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

/// The arithmetic of a run's matrix products (`run.precision`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in f32.
    #[default]
    F32,
    /// Matrix products in bf16, the rest in f32.
    Bf16,
}

thread_local! {
    static MATMUL_DTYPE: Cell<Option<DType>> = const { Cell::new(None) };
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
        }
    }

    /// The dtype of the matrix products, when it is not f32.
    fn matmul_dtype(self) -> Option<DType> {
        match self {
            Self::F32 => None,
            Self::Bf16 => Some(DType::BF16),
        }
    }

    /// Runs `f` with this precision's products on this thread; the previous setting comes back
    /// even if `f` panics. Nested scopes take the inner one.
    pub fn scope<R>(self, f: impl FnOnce() -> R) -> R {
        struct Restore(Option<DType>);
        impl Drop for Restore {
            fn drop(&mut self) {
                MATMUL_DTYPE.with(|c| c.set(self.0));
            }
        }
        let _restore = Restore(MATMUL_DTYPE.with(|c| c.replace(self.matmul_dtype())));
        f()
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The dtype a product with f32 input `x` runs in on this thread: `None` outside a bf16 scope
/// and for inputs that are not f32 (a model already cast as a whole keeps its own dtype).
pub(crate) fn autocast_dtype(x: &Tensor) -> Option<DType> {
    MATMUL_DTYPE
        .with(Cell::get)
        .filter(|_| x.dtype() == DType::F32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    use crate::model::layers::Linear;
    use candle_core::Module;

    fn layer() -> (Linear, Var, Tensor) {
        let dev = Device::Cpu;
        let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (5, 7), &dev).unwrap()).unwrap();
        let b = Tensor::randn(0f32, 1.0, 5, &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 3, 7), &dev).unwrap();
        (Linear::from_tensors(w.as_tensor().clone(), Some(b)), w, x)
    }

    fn max_abs(t: Tensor) -> f32 {
        t.abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    #[test]
    fn a_bf16_scope_rounds_the_product_and_keeps_f32_outside() {
        let (linear, w, x) = layer();
        let f32_out = linear.forward(&x).unwrap();
        let bf16_out = Precision::Bf16.scope(|| linear.forward(&x)).unwrap();
        assert_eq!(bf16_out.dtype(), DType::F32);
        let gap = max_abs((&bf16_out - &f32_out).unwrap());
        // Inputs rounded to 8 significant bits: off by a few 1e-3 of values of size ~3, not 0.
        assert!(gap > 0.0 && gap < 0.1, "bf16 vs f32 gap {gap}");
        // The scope ends with the call.
        assert_eq!(
            linear.forward(&x).unwrap().to_vec3::<f32>().unwrap(),
            f32_out.to_vec3::<f32>().unwrap()
        );

        // The weight's gradient comes back in f32, near the f32 gradient.
        let g32 = f32_out
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let loss = Precision::Bf16.scope(|| linear.forward(&x)).unwrap();
        let g16 = loss.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let (a, b) = (
            g32.get(w.as_tensor()).unwrap(),
            g16.get(w.as_tensor()).unwrap(),
        );
        assert_eq!(b.dtype(), DType::F32);
        let rel = max_abs((a - b).unwrap()) / max_abs(a.clone());
        assert!(rel > 0.0 && rel < 0.05, "relative gradient gap {rel}");
    }

    #[test]
    fn the_previous_setting_returns_after_a_panic() {
        let (_, _, x) = layer();
        let caught = std::panic::catch_unwind(|| Precision::Bf16.scope(|| panic!("inside")));
        assert!(caught.is_err());
        assert_eq!(autocast_dtype(&x), None);
        assert_eq!(
            Precision::Bf16.scope(|| autocast_dtype(&x)),
            Some(DType::BF16)
        );
    }
}
