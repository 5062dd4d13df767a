//! Fused layer normalisation over the last dimension with its backward: one pass per row forward,
//! one for the input gradient, one (column sums) for the weight and bias gradients — where the
//! composed version makes ~10 tensors and reduces the parameter gradients over the batch and token
//! dimensions through candle's strided (single-threaded) reduction.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use super::cpu::{column_sums, f32_slice, output_buffer, par_rows};
use super::simd;

/// Mean and 1/σ of one row.
#[inline]
fn moments(x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = simd::sum1(x, |v| v) / n;
    let var = simd::sum1(x, |v| (v - mean) * (v - mean)) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// `y = (x − μ) / √(σ² + ε) · w + b` per row; arguments (x, w, b).
pub struct LayerNormOp {
    pub eps: f32,
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "clasp-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, self.name())?;
        let w = f32_slice(s2, l2, self.name())?;
        let b = f32_slice(s3, l3, self.name())?;
        let d = w.len();
        let mut y = output_buffer(x.len());
        par_rows(&mut y, d, |r, out| {
            let row = &x[r * d..(r + 1) * d];
            let (mean, rstd) = moments(row, self.eps);
            simd::map3(row, w, b, out, |v, w, b| (v - mean) * rstd * w + b);
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let dx = x.apply_op3_no_bwd(w, &grad, &LayerNormInputGrad { eps: self.eps })?;
        let params = x.apply_op2_no_bwd(&grad, &LayerNormParamGrad { eps: self.eps })?;
        Ok((Some(dx), Some(params.get(0)?), Some(params.get(1)?)))
    }
}

/// ∂L/∂x = rstd · (g·w − mean(g·w) − x̂ · mean(g·w·x̂)) per row; arguments (x, w, g).
struct LayerNormInputGrad {
    eps: f32,
}

impl CustomOp3 for LayerNormInputGrad {
    fn name(&self) -> &'static str {
        "clasp-layer-norm-input-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, self.name())?;
        let w = f32_slice(s2, l2, self.name())?;
        let g = f32_slice(s3, l3, self.name())?;
        let d = w.len();
        let mut dx = output_buffer(x.len());
        par_rows(&mut dx, d, |r, out| {
            let (xr, gr) = (&x[r * d..(r + 1) * d], &g[r * d..(r + 1) * d]);
            let (mean, rstd) = moments(xr, self.eps);
            // out = g·w first, then the row means of g·w and g·w·x̂, then the gradient in place.
            simd::map2(gr, w, out, |g, w| g * w);
            let a = simd::sum1(out, |gw| gw) / d as f32;
            let c = simd::sum2(out, xr, |gw, x| gw * (x - mean)) * rstd / d as f32;
            simd::update2(out, xr, xr, |gw, x, _| {
                rstd * (gw - a - (x - mean) * rstd * c)
            });
        });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// `[2, D]`: Σ_rows g·x̂ (the weight's gradient) and Σ_rows g (the bias's); arguments (x, g).
struct LayerNormParamGrad {
    eps: f32,
}

impl CustomOp2 for LayerNormParamGrad {
    fn name(&self) -> &'static str {
        "clasp-layer-norm-param-grad"
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
        let d = l1.shape().dims().last().copied().unwrap_or(1);
        let rows = x.len() / d.max(1);
        let sums = column_sums(rows, 2 * d, |r, acc| {
            let (xr, gr) = (&x[r * d..(r + 1) * d], &g[r * d..(r + 1) * d]);
            let (mean, rstd) = moments(xr, self.eps);
            let (dw, db) = acc.split_at_mut(d);
            simd::update2(dw, gr, xr, |s, g, x| s + g * (x - mean) * rstd);
            simd::update2(db, gr, gr, |s, g, _| s + g);
        });
        Ok((CpuStorage::F32(sums), Shape::from((2, d))))
    }
}
