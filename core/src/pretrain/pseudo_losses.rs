//! The losses that carry CLIP's guidance: per-patch cross-entropy against the part
//! pseudo-labels, and soft-target BCE against the attribute probabilities with positive-ratio
//! weights (exp(1 − r) for presence, exp(r) for absence, as the weighted BCE of PA-100K
//! baselines).

use anyhow::{bail, Result};
use candle_core::{DType, Tensor};

use crate::model::layers::log_softmax_last_dim;

/// Label value of a patch the part loss ignores.
pub const IGNORE: u8 = 255;

/// Mean cross-entropy of `logits` `[N, K]` against `labels` (N values, [`IGNORE`] skipped);
/// `None` when every patch is ignored.
pub fn part_loss(logits: &Tensor, labels: &[u8]) -> Result<Option<Tensor>> {
    let (n, k) = logits.dims2()?;
    if labels.len() != n {
        bail!("{} part labels for {n} patches", labels.len());
    }
    let mut one_hot = vec![0f32; n * k];
    let mut counted = 0usize;
    for (i, &l) in labels.iter().enumerate() {
        if l == IGNORE {
            continue;
        }
        if l as usize >= k {
            bail!("part label {l} outside the {k} classes of the part head");
        }
        one_hot[i * k + l as usize] = 1.0;
        counted += 1;
    }
    if counted == 0 {
        return Ok(None);
    }
    let targets = Tensor::from_vec(one_hot, (n, k), logits.device())?.to_dtype(logits.dtype())?;
    let nll = (log_softmax_last_dim(logits)? * targets)?
        .sum_all()?
        .neg()?;
    Ok(Some((nll / counted as f64)?))
}

/// log(1 + eˣ) without overflow.
fn softplus(x: &Tensor) -> candle_core::Result<Tensor> {
    x.relu()? + x.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?
}

/// Weighted soft BCE of `logits` `[B, A]` against probabilities `targets` `[B, A]`, counting only
/// entries where `mask` `[B, A]` is 1; `positive_ratio` `[A]` sets the weights. `None` when the
/// mask is empty.
pub fn attribute_loss(
    logits: &Tensor,
    targets: &Tensor,
    mask: &Tensor,
    positive_ratio: &Tensor,
) -> Result<Option<Tensor>> {
    let counted = mask.to_dtype(DType::F32)?.sum_all()?.to_scalar::<f32>()?;
    if counted == 0.0 {
        return Ok(None);
    }
    let w_pos = positive_ratio.affine(-1.0, 1.0)?.exp()?.unsqueeze(0)?;
    let w_neg = positive_ratio.exp()?.unsqueeze(0)?;
    // −log σ(z) = softplus(−z); −log(1 − σ(z)) = softplus(z).
    let pos = softplus(&logits.neg()?)?
        .broadcast_mul(&w_pos)?
        .mul(targets)?;
    let neg = softplus(logits)?
        .broadcast_mul(&w_neg)?
        .mul(&targets.affine(-1.0, 1.0)?)?;
    let per = ((pos + neg)? * mask)?;
    Ok(Some((per.sum_all()? / counted as f64)?))
}

/// Mean probability per attribute over the valid rows of `[N, A]` probabilities: the positive
/// ratio the weights use.
pub fn positive_ratio(probs: &[f32], valid: &[bool], num_attrs: usize) -> Vec<f32> {
    let mut sum = vec![0f64; num_attrs];
    let mut n = 0usize;
    for (row, ok) in probs.chunks(num_attrs.max(1)).zip(valid) {
        if *ok {
            for (s, p) in sum.iter_mut().zip(row) {
                *s += *p as f64;
            }
            n += 1;
        }
    }
    sum.iter()
        .map(|s| (s / n.max(1) as f64).clamp(1e-3, 1.0 - 1e-3) as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(v: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn part_loss_averages_over_labelled_patches_only() {
        let logits = t(&[2.0, 0.0, 0.0, 1.0, 5.0, 5.0], &[3, 2]);
        let got = part_loss(&logits, &[0, 1, IGNORE])
            .unwrap()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64;
        let ce0 = -(2f64 - (2f64.exp() + 1.0).ln());
        let ce1 = -(1f64 - (1.0 + 1f64.exp()).ln());
        assert!((got - (ce0 + ce1) / 2.0).abs() < 1e-6, "{got}");
        assert!(part_loss(&logits, &[IGNORE; 3]).unwrap().is_none());
        assert!(part_loss(&logits, &[0, 2, 0]).is_err());
    }

    #[test]
    fn attribute_loss_weights_presence_by_rarity_and_skips_masked_entries() {
        let z = [0.5f32, -1.0];
        let logits = t(&z, &[1, 2]);
        let targets = t(&[0.8, 0.3], &[1, 2]);
        let r = [0.2f32, 0.6];
        let ratio = t(&r, &[2]);
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        let term = |z: f64, y: f64, r: f64| {
            -((1.0 - r).exp() * y * sig(z).ln() + r.exp() * (1.0 - y) * (1.0 - sig(z)).ln())
        };
        let both = attribute_loss(&logits, &targets, &t(&[1.0, 1.0], &[1, 2]), &ratio)
            .unwrap()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64;
        let want = (term(0.5, 0.8, 0.2) + term(-1.0, 0.3, 0.6)) / 2.0;
        assert!((both - want).abs() < 1e-5, "{both} vs {want}");
        let first = attribute_loss(&logits, &targets, &t(&[1.0, 0.0], &[1, 2]), &ratio)
            .unwrap()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64;
        assert!((first - term(0.5, 0.8, 0.2)).abs() < 1e-5);
        assert!(
            attribute_loss(&logits, &targets, &t(&[0.0, 0.0], &[1, 2]), &ratio)
                .unwrap()
                .is_none()
        );
        let r = positive_ratio(&[1.0, 0.0, 0.5, 0.5, 0.9, 0.9], &[true, true, false], 2);
        assert_eq!(r, vec![0.75, 0.25]);
    }
}
