//! im2col kernels (CPU, f32) with their backward: unfold takes an image's k×k windows to columns,
//! fold sums columns back into an image, and each is the other's gradient. The heads'
//! convolutions ([`crate::model::conv`]) are these plus one matmul.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

/// Where a k×k window at grid cell (oy, ox) reads an image: row oy·stride + ky − padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub channels: usize,
    pub k: usize,
    pub stride: usize,
    pub padding: usize,
    /// Image size.
    pub h: usize,
    pub w: usize,
    /// Window grid size.
    pub gh: usize,
    pub gw: usize,
}

impl Window {
    /// Image row/column of tap `t` at grid position `g`, if inside the image.
    fn at(&self, g: usize, t: usize, size: usize) -> Option<usize> {
        (g * self.stride + t)
            .checked_sub(self.padding)
            .filter(|v| *v < size)
    }

    fn cols(&self) -> usize {
        self.channels * self.k * self.k
    }
}

/// Image `[B, C, h, w]` → columns `[B·gh·gw, C·k·k]` (column (c·k + ky)·k + kx).
struct Unfold(Window);
/// Columns → image, overlapping windows summed.
struct Fold(Window);

fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: f32 only");
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: input must be contiguous"),
    }
}

impl CustomOp1 for Unfold {
    fn name(&self) -> &'static str {
        "unfold"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(storage, layout, "unfold")?;
        let g = self.0;
        let b = layout.dims()[0];
        let (plane, n_cols) = (g.h * g.w, g.cols());
        let mut out = vec![0f32; b * g.gh * g.gw * n_cols];
        for (row, dst) in out.chunks_mut(n_cols).enumerate() {
            let (bi, oy, ox) = (row / (g.gh * g.gw), row / g.gw % g.gh, row % g.gw);
            for c in 0..g.channels {
                let src = &x[(bi * g.channels + c) * plane..][..plane];
                for ky in 0..g.k {
                    let Some(y) = g.at(oy, ky, g.h) else { continue };
                    for kx in 0..g.k {
                        if let Some(xx) = g.at(ox, kx, g.w) {
                            dst[(c * g.k + ky) * g.k + kx] = src[y * g.w + xx];
                        }
                    }
                }
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((b * g.gh * g.gw, n_cols))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1(Fold(self.0))?))
    }
}

impl CustomOp1 for Fold {
    fn name(&self) -> &'static str {
        "fold"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let cols = contiguous_f32(storage, layout, "fold")?;
        let g = self.0;
        let n_cols = g.cols();
        let b = layout.dims()[0] / (g.gh * g.gw);
        let plane = g.h * g.w;
        let mut out = vec![0f32; b * g.channels * plane];
        for (row, src) in cols.chunks(n_cols).enumerate() {
            let (bi, oy, ox) = (row / (g.gh * g.gw), row / g.gw % g.gh, row % g.gw);
            for c in 0..g.channels {
                let dst = &mut out[(bi * g.channels + c) * plane..][..plane];
                for ky in 0..g.k {
                    let Some(y) = g.at(oy, ky, g.h) else { continue };
                    for kx in 0..g.k {
                        if let Some(xx) = g.at(ox, kx, g.w) {
                            dst[y * g.w + xx] += src[(c * g.k + ky) * g.k + kx];
                        }
                    }
                }
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((b, g.channels, g.h, g.w))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1(Unfold(self.0))?))
    }
}

/// Image `[B, C, h, w]` (contiguous) → columns `[B·gh·gw, C·k·k]`.
pub(crate) fn unfold(x: &Tensor, window: Window) -> Result<Tensor> {
    x.apply_op1(Unfold(window))
}

/// Columns `[B·gh·gw, C·k·k]` → image `[B, C, h, w]`, overlapping windows summed.
pub(crate) fn fold(cols: &Tensor, window: Window) -> Result<Tensor> {
    cols.apply_op1(Fold(window))
}
