//! CLIP's training objective and its zero-shot read-out: the symmetric InfoNCE loss over a batch
//! of image–text pairs with a learnable temperature, and image→text retrieval accuracy.

use anyhow::Result;
use candle_core::{Tensor, D};

use super::pseudo_labels::l2_normalize;

/// CLIP clamps the learnable logit scale at ln(100).
pub const MAX_LOGIT_SCALE: f64 = 4.605_170_185_988_091;

/// Log-softmax over the last dimension, differentiable (the shift is detached).
fn log_softmax_last_dim(x: &Tensor) -> candle_core::Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let shifted = x.broadcast_sub(&max)?;
    shifted.broadcast_sub(&shifted.exp()?.sum_keepdim(D::Minus1)?.log()?)
}

/// Mean cross-entropy of each row of `logits` `[B, B]` against the target rows `targets`.
fn soft_nll(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    let b = logits.dim(0)?;
    (log_softmax_last_dim(logits)? * targets)?
        .sum_all()?
        .affine(-1.0 / b as f64, 0.0)
}

/// Targets of a batch whose texts may repeat ("a person in shoes" describes many images): row
/// i spreads its mass evenly over the pairs whose text is the same as its own (the identity
/// when every text is distinct). Symmetric, so it serves both directions.
fn same_text_targets(texts: &[&str], device: &candle_core::Device) -> candle_core::Result<Tensor> {
    let b = texts.len();
    let mut t = vec![0f32; b * b];
    for i in 0..b {
        let same: Vec<usize> = (0..b).filter(|j| texts[*j] == texts[i]).collect();
        for j in &same {
            t[i * b + j] = 1.0 / same.len() as f32;
        }
    }
    Tensor::from_vec(t, (b, b), device)
}

/// The symmetric InfoNCE loss of paired embeddings `[B, P]` (row i of each is one pair, `texts`
/// the captions): logits = exp(s)·cos, cross-entropy over texts per image and over images per
/// text, averaged — `s` being the learnable logit scale, clamped at ln(100) as CLIP does. Pairs
/// with the same caption are positives of each other.
pub fn clip_loss(
    images: &Tensor,
    texts_embeds: &Tensor,
    texts: &[&str],
    logit_scale: &Tensor,
) -> Result<Tensor> {
    let img = l2_normalize(images)?;
    let txt = l2_normalize(texts_embeds)?;
    let scale = logit_scale.clamp(f64::MIN, MAX_LOGIT_SCALE)?.exp()?;
    let logits = img.matmul(&txt.t()?)?.broadcast_mul(&scale)?;
    let targets = same_text_targets(texts, images.device())?.to_dtype(logits.dtype())?;
    let loss = ((soft_nll(&logits, &targets)? + soft_nll(&logits.t()?, &targets)?)? * 0.5)?;
    Ok(loss)
}

/// Image→text retrieval: the fraction of images whose true text (`truth[i]`, a row of `texts`)
/// is among the `k` most similar texts.
pub fn retrieval_accuracy(
    images: &Tensor,
    texts: &Tensor,
    truth: &[usize],
    k: usize,
) -> Result<f64> {
    let sims = l2_normalize(images)?
        .matmul(&l2_normalize(texts)?.t()?)?
        .to_vec2::<f32>()?;
    let hits = sims
        .iter()
        .zip(truth)
        .filter(|(row, t)| {
            let own = row[**t];
            // Rank = texts strictly more similar than the true one.
            row.iter().filter(|s| **s > own).count() < k
        })
        .count();
    Ok(hits as f64 / truth.len().max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn loss_matches_a_hand_computed_case() {
        let dev = Device::Cpu;
        // Orthogonal pairs: cos = identity. With scale e^0 = 1 each row's loss is
        // −log(e / (e + 1)) = log(1 + e⁻¹).
        let img = Tensor::new(&[[2f32, 0.0], [0.0, 3.0]], &dev).unwrap();
        let txt = Tensor::new(&[[1f32, 0.0], [0.0, 1.0]], &dev).unwrap();
        let s = Tensor::new(0f32, &dev).unwrap();
        let loss = clip_loss(&img, &txt, &["a", "b"], &s)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let want = (1.0 + (-1f32).exp()).ln();
        assert!((loss - want).abs() < 1e-6, "{loss} vs {want}");
        // The scale is clamped at 100.
        let big = Tensor::new(10f32, &dev).unwrap();
        let loss = clip_loss(&img, &txt, &["a", "b"], &big)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let want = (1.0 + (-100f32).exp()).ln();
        assert!((loss - want).abs() < 1e-6);
        // One caption for both: each row's target is ½, ½; −½·log(e/(e+1)) − ½·log(1/(e+1)).
        let loss = clip_loss(&img, &txt, &["a", "a"], &s)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let e = 1f32.exp();
        let want = -0.5 * (e / (e + 1.0)).ln() - 0.5 * (1.0 / (e + 1.0)).ln();
        assert!((loss - want).abs() < 1e-6, "{loss} vs {want}");
    }

    #[test]
    fn retrieval_counts_the_rank_of_the_true_text() {
        let dev = Device::Cpu;
        let img = Tensor::new(&[[1f32, 0.0], [1.0, 0.1]], &dev).unwrap();
        let txt = Tensor::new(&[[1f32, 0.0], [0.0, 1.0], [1.0, 0.2]], &dev).unwrap();
        // Image 0: true text 0 is the best. Image 1: true text 1 ranks third.
        assert_eq!(retrieval_accuracy(&img, &txt, &[0, 1], 1).unwrap(), 0.5);
        assert_eq!(retrieval_accuracy(&img, &txt, &[0, 1], 3).unwrap(), 1.0);
    }
}
