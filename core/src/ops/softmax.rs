//! Fused softmax and log-softmax of `scale · x` over the last dimension with their backward
//! (candle's own fused `softmax_last_dim` records none). Backward uses the saved output:
//! softmax ∂x = scale · y·(g − Σ g·y), log-softmax ∂x = scale · (g − eʸ·Σ g). The scale is
//! attention's 1/√d, applied here instead of as a separate pass over the score matrix.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use super::cpu::{f32_slice, output_buffer, par_rows};
use super::fast_math::exp;
use super::simd::{self, map1, map2};

fn last_dim(layout: &Layout) -> usize {
    layout.shape().dims().last().copied().unwrap_or(1).max(1)
}

/// Softmax (`log == false`) or log-softmax (`log == true`) of each row times `scale`.
pub struct SoftmaxOp {
    pub log: bool,
    pub scale: f32,
}

impl CustomOp1 for SoftmaxOp {
    fn name(&self) -> &'static str {
        if self.log {
            "clasp-log-softmax"
        } else {
            "clasp-softmax"
        }
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(storage, layout, self.name())?;
        let d = last_dim(layout);
        let mut y = output_buffer(x.len());
        par_rows(&mut y, d, |r, out| {
            let row = &x[r * d..(r + 1) * d];
            // The scale is positive (checked by the caller), so max(s·x) = s·max(x).
            let s = self.scale;
            let max = s * simd::max(row);
            if self.log {
                let log_sum = simd::sum1(row, |v| exp(v * s - max)).ln();
                map1(row, out, |v| v * s - max - log_sum);
            } else {
                map1(row, out, |v| exp(v * s - max));
                let inv = 1.0 / simd::sum1(out, |y| y);
                out.iter_mut().for_each(|o| *o *= inv);
            }
        });
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        let op = SoftmaxGrad {
            log: self.log,
            scale: self.scale,
        };
        Ok(Some(y.apply_op2_no_bwd(&grad, &op)?))
    }
}

/// The input gradient from the output and the output gradient; arguments (y, g).
struct SoftmaxGrad {
    log: bool,
    scale: f32,
}

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "clasp-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let y = f32_slice(s1, l1, self.name())?;
        let g = f32_slice(s2, l2, self.name())?;
        let d = last_dim(l1);
        let mut dx = output_buffer(y.len());
        par_rows(&mut dx, d, |r, out| {
            let (yr, gr) = (&y[r * d..(r + 1) * d], &g[r * d..(r + 1) * d]);
            let s = self.scale;
            if self.log {
                let total = simd::sum1(gr, |g| g);
                map2(yr, gr, out, |y, g| s * (g - exp(y) * total));
            } else {
                let dot = simd::sum2(yr, gr, |y, g| y * g);
                map2(yr, gr, out, |y, g| s * y * (g - dot));
            }
        });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}
