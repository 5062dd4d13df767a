//! Fused GELUs with their backward in one pass — exact (erf): ∂x = g·(Φ(x) + x·φ(x)), where
//! candle composes the derivative from six full-size temporaries; and CLIP's quick GELU
//! x·σ(1.702x): ∂x = g·(σ + 1.702x·σ(1 − σ)).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use super::cpu::{f32_slice, output_buffer, par_rows};
use super::fast_math::{erf, exp};
use super::simd::{map1, map2};

/// Rows the element-wise kernels split the buffer into (any length works: rows are a unit of work).
const CHUNK: usize = 4096;

/// CLIP's quick GELU constant.
const QUICK: f32 = 1.702;

#[inline(always)]
fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + exp(-v))
}

/// x·Φ(x), Φ the standard normal CDF (`quick == false`), or x·σ(1.702x) (`quick == true`).
pub struct GeluOp {
    pub quick: bool,
}

impl CustomOp1 for GeluOp {
    fn name(&self) -> &'static str {
        if self.quick {
            "clasp-quick-gelu"
        } else {
            "clasp-gelu"
        }
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(storage, layout, self.name())?;
        let mut y = output_buffer(x.len());
        let quick = self.quick;
        for_chunks(&mut y, |start, out| {
            let x = &x[start..start + out.len()];
            if quick {
                map1(x, out, |v| v * sigmoid(QUICK * v));
            } else {
                map1(x, out, |v| {
                    (erf(v * std::f32::consts::FRAC_1_SQRT_2) + 1.0) * 0.5 * v
                });
            }
        });
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        let op = GeluGrad { quick: self.quick };
        Ok(Some(x.apply_op2_no_bwd(&grad, &op)?))
    }
}

/// Arguments (x, g).
struct GeluGrad {
    quick: bool,
}

impl CustomOp2 for GeluGrad {
    fn name(&self) -> &'static str {
        "clasp-gelu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, self.name())?;
        let g = f32_slice(s2, l2, self.name())?;
        // 1/√(2π)
        const INV_SQRT_2PI: f32 = 0.398_942_3;
        let mut dx = output_buffer(x.len());
        let quick = self.quick;
        for_chunks(&mut dx, |start, out| {
            let range = start..start + out.len();
            let (x, g) = (&x[range.clone()], &g[range]);
            if quick {
                map2(x, g, out, |v, g| {
                    let s = sigmoid(QUICK * v);
                    g * (s + QUICK * v * s * (1.0 - s))
                });
            } else {
                map2(x, g, out, |v, g| {
                    let cdf = 0.5 * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2));
                    let pdf = INV_SQRT_2PI * exp(-0.5 * v * v);
                    g * (cdf + v * pdf)
                });
            }
        });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// `f(offset, chunk)` over `out` in chunks of [`CHUNK`] (the last one shorter), in parallel.
fn for_chunks(out: &mut [f32], f: impl Fn(usize, &mut [f32]) + Sync) {
    let n = out.len();
    let full = n - n % CHUNK;
    let (head, tail) = out.split_at_mut(full);
    par_rows(head, CHUNK, |r, o| f(r * CHUNK, o));
    f(full, tail);
}
