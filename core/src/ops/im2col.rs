//! im2col kernels (CPU, f32) with their backward: unfold takes an image's k×k windows to columns,
//! fold sums columns back into an image, and each is the other's gradient. The heads'
//! convolutions ([`crate::model::conv`]) are these plus one matmul.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use super::cpu::{f32_slice, par_rows};

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

impl CustomOp1 for Unfold {
    fn name(&self) -> &'static str {
        "unfold"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(storage, layout, "unfold")?;
        let g = self.0;
        let b = layout.dims()[0];
        let (plane, n_cols) = (g.h * g.w, g.cols());
        // Zeroed: taps in the padding stay 0.
        let mut out = vec![0f32; b * g.gh * g.gw * n_cols];
        par_rows(&mut out, n_cols, |row, dst| {
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
        });
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
        let cols = f32_slice(storage, layout, "fold")?;
        let g = self.0;
        let (n_cols, cells) = (g.cols(), g.gh * g.gw);
        let b = layout.dims()[0] / cells;
        let plane = g.h * g.w;
        let mut out = vec![0f32; b * g.channels * plane];
        // One image per task: its windows are summed in the same order as on one thread.
        par_rows(&mut out, g.channels * plane, |bi, image| {
            for cell in 0..cells {
                let src = &cols[(bi * cells + cell) * n_cols..][..n_cols];
                let (oy, ox) = (cell / g.gw, cell % g.gw);
                for c in 0..g.channels {
                    let dst = &mut image[c * plane..][..plane];
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
        });
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
