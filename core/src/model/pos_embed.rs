//! Position-embedding resampling to any patch grid, differentiable.
//!
//! timm resamples with `F.interpolate(mode="bicubic", antialias=True)`. That resampling is
//! separable, so we build the two 1-D weight matrices exactly as PyTorch's anti-aliased bicubic
//! kernel does and apply them as matmuls: the gradient flows back into `pos_embed` for free.

use candle_core::{Device, Result, Tensor};

/// PyTorch's anti-aliased bicubic filter (a = -0.5, as PIL).
pub fn bicubic_aa(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// `[out, in]` weights of 1-D anti-aliased bicubic resampling (align_corners = False), following
/// `_compute_indices_min_size_weights_aa` in ATen's UpSample.h.
pub fn bicubic_aa_matrix(in_size: usize, out_size: usize) -> Vec<f32> {
    let scale = in_size as f64 / out_size as f64;
    let support = if scale >= 1.0 { 2.0 * scale } else { 2.0 };
    let inv_scale = if scale >= 1.0 { 1.0 / scale } else { 1.0 };
    let mut m = vec![0f32; out_size * in_size];
    for i in 0..out_size {
        let center = scale * (i as f64 + 0.5);
        // C++ truncation toward zero, then clamped, as ATen does.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let weights: Vec<f64> = (xmin..xmax)
            .map(|j| bicubic_aa((j as f64 - center + 0.5) * inv_scale))
            .collect();
        let total: f64 = weights.iter().sum();
        for (k, j) in (xmin..xmax).enumerate() {
            let w = if total != 0.0 {
                weights[k] / total
            } else {
                0.0
            };
            m[i * in_size + j] = w as f32;
        }
    }
    m
}

/// `[out, in]` weights of PyTorch's plain bicubic resampling (`F.interpolate(mode="bicubic",
/// align_corners=False)`, a = −0.75, edge indices clamped), as transformers' CLIP uses for
/// `interpolate_pos_encoding`.
pub fn bicubic_matrix(in_size: usize, out_size: usize) -> Vec<f32> {
    const A: f64 = -0.75;
    let near = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    let scale = in_size as f64 / out_size as f64;
    let mut m = vec![0f32; out_size * in_size];
    for i in 0..out_size {
        let real = scale * (i as f64 + 0.5) - 0.5;
        let base = real.floor();
        let t = real - base;
        let coeffs = [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)];
        for (k, c) in coeffs.iter().enumerate() {
            let j = (base as i64 - 1 + k as i64).clamp(0, in_size as i64 - 1) as usize;
            m[i * in_size + j] += *c as f32;
        }
    }
    m
}

/// Which 1-D resampling [`resample_grid_with`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GridResampling {
    /// timm's anti-aliased bicubic.
    AntialiasedBicubic,
    /// PyTorch's plain bicubic (transformers' CLIP).
    Bicubic,
}

fn matrix(
    in_size: usize,
    out_size: usize,
    kind: GridResampling,
    device: &Device,
) -> Result<Tensor> {
    let m = match kind {
        GridResampling::AntialiasedBicubic => bicubic_aa_matrix(in_size, out_size),
        GridResampling::Bicubic => bicubic_matrix(in_size, out_size),
    };
    Tensor::from_vec(m, (out_size, in_size), device)
}

/// Resamples a `[gh0·gw0, d]` grid of position embeddings to `[gh·gw, d]` as timm does.
pub fn resample_grid(pos: &Tensor, old: (usize, usize), new: (usize, usize)) -> Result<Tensor> {
    resample_grid_with(pos, old, new, GridResampling::AntialiasedBicubic)
}

/// Resamples a `[gh0·gw0, d]` grid of position embeddings to `[gh·gw, d]` with `kind`.
pub fn resample_grid_with(
    pos: &Tensor,
    old: (usize, usize),
    new: (usize, usize),
    kind: GridResampling,
) -> Result<Tensor> {
    if old == new {
        return Ok(pos.clone());
    }
    let (gh0, gw0) = old;
    let (gh, gw) = new;
    let d = pos.dim(1)?;
    let dev = pos.device();
    let ah = matrix(gh0, gh, kind, dev)?.to_dtype(pos.dtype())?;
    let aw = matrix(gw0, gw, kind, dev)?.to_dtype(pos.dtype())?;
    // Rows: [gh, gw0·d] = A_h · P[gh0, gw0·d]
    let rows = ah.matmul(&pos.reshape((gh0, gw0 * d))?)?;
    // Columns: per row, [d, gw0] · A_wᵀ → [d, gw]
    let rows = rows.reshape((gh, gw0, d))?.transpose(1, 2)?.contiguous()?;
    let out = rows.broadcast_matmul(&aw.t()?)?; // [gh, d, gw]
    out.transpose(1, 2)?.contiguous()?.reshape((gh * gw, d))
}
