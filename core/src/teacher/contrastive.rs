//! CLIP's training objective and its zero-shot read-out: the symmetric InfoNCE loss over a batch
//! of image–text pairs with a learnable temperature, and image→text retrieval accuracy.

use anyhow::Result;
use candle_core::Tensor;

use super::pseudo_labels::l2_normalize;
use crate::model::layers::log_softmax_last_dim;

/// CLIP clamps the learnable logit scale at ln(100).
pub const MAX_LOGIT_SCALE: f64 = 4.605_170_185_988_091;

/// Mean cross-entropy of each row of `logits` `[B, B]` against the target rows `targets`.
fn soft_nll(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    let b = logits.dim(0)?;
    (log_softmax_last_dim(logits)? * targets)?
        .sum_all()?
        .affine(-1.0 / b as f64, 0.0)
}

/// The symmetric InfoNCE loss of images `[N, P]` against the distinct texts of their captions
/// `[U, P]`, `text_of[i]` being image i's text: logits = exp(s)·cos; image→text is a
/// cross-entropy over the U texts per image; text→image a cross-entropy over the N images per
/// text, spread evenly over the images that share it. With all captions distinct (U = N,
/// `text_of[i] = i`) this is CLIP's loss; when captions repeat ("a person in boots" describes
/// many images) a repeated text is one class, not a set of false negatives, and image→text is
/// logit-adjusted by each text's share of the batch (a no-op when all are distinct). `s` is the
/// learnable logit scale, clamped at ln(100) as CLIP does.
pub fn clip_loss(
    images: &Tensor,
    texts: &Tensor,
    text_of: &[usize],
    logit_scale: &Tensor,
) -> Result<Tensor> {
    let (n, u) = (images.dim(0)?, texts.dim(0)?);
    if text_of.len() != n || text_of.iter().any(|t| *t >= u) {
        anyhow::bail!("{n} images need {n} text indices below {u}");
    }
    let img = l2_normalize(images)?;
    let txt = l2_normalize(texts)?;
    let scale = logit_scale.clamp(f64::MIN, MAX_LOGIT_SCALE)?.exp()?;
    let logits = img.matmul(&txt.t()?)?.broadcast_mul(&scale)?;
    let mut one_hot = vec![0f32; n * u];
    let mut per_text = vec![0usize; u];
    for (i, t) in text_of.iter().enumerate() {
        one_hot[i * u + t] = 1.0;
        per_text[*t] += 1;
    }
    // Text→image targets: column t's mass spread over its images (texts without images,
    // if any, have no row of their own and are left out by their zero target).
    let mut by_text = vec![0f32; u * n];
    for (i, t) in text_of.iter().enumerate() {
        by_text[t * n + i] = 1.0 / per_text[*t] as f32;
    }
    let dev = images.device();
    let dt = logits.dtype();
    let i2t = Tensor::from_vec(one_hot, (n, u), dev)?.to_dtype(dt)?;
    let t2i = Tensor::from_vec(by_text, (u, n), dev)?.to_dtype(dt)?;
    let used = per_text.iter().filter(|c| **c > 0).count();
    // Logit adjustment (Menon et al., 2021): image→text logits get each text's log share of
    // the batch during training, so the similarities themselves learn no class prior — "without
    // a hat" does not win for every image because most images have none — and comparing two
    // sentences later is a balanced decision.
    let log_prior: Vec<f32> = per_text
        .iter()
        .map(|c| ((*c).max(1) as f32 / n as f32).ln())
        .collect();
    let log_prior = Tensor::from_vec(log_prior, (1, u), dev)?.to_dtype(dt)?;
    let image_to_text = soft_nll(&logits.broadcast_add(&log_prior)?, &i2t)?;
    let text_to_image = (soft_nll(&logits.t()?, &t2i)? * (u as f64 / used as f64))?;
    Ok(((image_to_text + text_to_image)? * 0.5)?)
}

/// Distinct texts of `texts` (first-seen order) and each text's index among them.
pub fn distinct<'a>(texts: &[&'a str]) -> (Vec<&'a str>, Vec<usize>) {
    let mut unique: Vec<&str> = Vec::new();
    let index = texts
        .iter()
        .map(|t| match unique.iter().position(|u| u == t) {
            Some(i) => i,
            None => {
                unique.push(t);
                unique.len() - 1
            }
        })
        .collect();
    (unique, index)
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
        let loss = clip_loss(&img, &txt, &[0, 1], &s)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let want = (1.0 + (-1f32).exp()).ln();
        assert!((loss - want).abs() < 1e-6, "{loss} vs {want}");
        // The scale is clamped at 100.
        let big = Tensor::new(10f32, &dev).unwrap();
        let loss = clip_loss(&img, &txt, &[0, 1], &big)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let want = (1.0 + (-100f32).exp()).ln();
        assert!((loss - want).abs() < 1e-6);
        // One caption for both images: image→text has a single class (loss 0); text→image
        // spreads ½, ½ over cos (1, 0): −½·(1 − log(e + 1)) − ½·(−log(e + 1)) = log(e + 1) − ½.
        let one = Tensor::new(&[[1f32, 0.0]], &dev).unwrap();
        let loss = clip_loss(&img, &one, &[0, 0], &s)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let want = 0.5 * ((1f32.exp() + 1.0).ln() - 0.5);
        assert!((loss - want).abs() < 1e-6, "{loss} vs {want}");
        assert_eq!(distinct(&["x", "y", "x"]), (vec!["x", "y"], vec![0, 1, 0]));
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
