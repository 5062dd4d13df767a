//! The batch-hard triplet loss (Hermans et al., 2017), as fast-reid and torchreid compute it:
//! for each anchor, its farthest same-identity image and its nearest other-identity image in the
//! batch, with a hinge at `margin` or a soft margin (softplus). Built from host ops, so the host's
//! autograd carries its gradient.

use clasp_sdk::{fail, Host, Result, Tensor};

/// Added to same-identity distances before taking the nearest negative, so they never win.
const EXCLUDE: f32 = 1e6;

/// Euclidean distances between the rows of `x` `[B, f]`, `[B, B]`.
pub fn pairwise_distances<'h>(host: &'h Host, x: Tensor<'h>) -> Result<Tensor<'h>> {
    let sq = x.sqr()?.sum(1, true)?;
    let gram = x.matmul(x.permute(&[1, 0])?)?;
    let d2 = sq.add(sq.permute(&[1, 0])?)?.sub(gram.affine(2.0, 0.0)?)?;
    // Clamped above zero: sqrt's gradient at 0 is infinite (the diagonal).
    d2.maximum(host.constant(&[1], &[1e-12])?)?.sqrt()
}

/// How the triplet's hinge is applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Margin {
    /// `max(0, d(a,p) − d(a,n) + m)`
    Hard(f64),
    /// `log(1 + exp(d(a,p) − d(a,n)))`
    Soft,
}

/// Mean batch-hard triplet loss of features `x` `[B, f]` with identities `labels`; `normalize`
/// first scales each feature to unit length.
pub fn batch_hard_triplet<'h>(
    host: &'h Host,
    x: Tensor<'h>,
    labels: &[i64],
    margin: Margin,
    normalize: bool,
) -> Result<Tensor<'h>> {
    let b = labels.len();
    if x.shape()?.first() != Some(&b) {
        fail!("triplet loss: {:?} features for {b} labels", x.shape()?);
    }
    let x = if normalize {
        let norm = x.sqr()?.sum(1, true)?.affine(1.0, 1e-12)?.sqrt()?;
        x.div(norm)?
    } else {
        x
    };
    let dist = pairwise_distances(host, x)?;
    let same: Vec<f32> = (0..b * b)
        .map(|i| (labels[i / b] == labels[i % b]) as u8 as f32)
        .collect();
    let same_mask = host.constant(&[b, b], &same)?;
    let exclude: Vec<f32> = same.iter().map(|s| s * EXCLUDE).collect();
    let hardest_positive = dist.mul(same_mask)?.max(1, false)?;
    let hardest_negative = dist.add(host.constant(&[b, b], &exclude)?)?.min(1, false)?;
    let gap = hardest_positive.sub(hardest_negative)?;
    let per_anchor = match margin {
        Margin::Hard(m) => gap.affine(1.0, m)?.relu()?,
        // softplus(z) = max(z, 0) + log(1 + e^−|z|), stable for large |z|.
        Margin::Soft => gap
            .relu()?
            .add(gap.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?)?,
    };
    per_anchor.mean(0, false)
}
