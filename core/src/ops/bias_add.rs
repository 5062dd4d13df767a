//! `x + b` with `b` broadcast over the last dimension (a linear layer's bias). Its backward sums
//! the output gradient over all leading dimensions in one parallel pass — candle reduces a
//! broadcast over the batch and token dimensions with its strided single-threaded path.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use super::cpu::{column_sums, f32_slice, output_buffer, par_rows};
use super::simd;

pub struct BiasAddOp;

impl CustomOp2 for BiasAddOp {
    fn name(&self) -> &'static str {
        "clasp-bias-add"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, self.name())?;
        let b = f32_slice(s2, l2, self.name())?;
        let d = b.len();
        let mut y = output_buffer(x.len());
        par_rows(&mut y, d, |r, out| {
            simd::map2(&x[r * d..(r + 1) * d], b, out, |v, bias| v + bias);
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let db = grad.apply_op1_no_bwd(&ColumnSum {
            width: b.elem_count(),
        })?;
        Ok((Some(grad), Some(db)))
    }
}

/// Σ over all leading dimensions: `[…, D]` → `[D]`.
struct ColumnSum {
    width: usize,
}

impl CustomOp1 for ColumnSum {
    fn name(&self) -> &'static str {
        "clasp-column-sum"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = f32_slice(storage, layout, self.name())?;
        let d = self.width.max(1);
        let sums = column_sums(g.len() / d, d, |r, acc| {
            let row = &g[r * d..(r + 1) * d];
            simd::update2(acc, row, row, |s, v, _| s + v);
        });
        Ok((CpuStorage::F32(sums), Shape::from(d)))
    }
}
