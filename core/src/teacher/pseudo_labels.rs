//! From CLIP embeddings to pseudo-labels: zero-shot prompt ensembles, part labels per patch
//! (cosine similarity to each part's prompts, pooled per part, softmax with a temperature, argmax
//! and its probability as the confidence), and attribute probabilities from a positive and a
//! negative side per attribute (softmax over the pair), with an ignore margin around ½.

use anyhow::{bail, Result};
use candle_core::{Tensor, D};

use super::sentence_bank::SentenceBank;

/// Rows scaled to unit length.
pub fn l2_normalize(x: &Tensor) -> candle_core::Result<Tensor> {
    x.broadcast_div(
        &x.sqr()?
            .sum_keepdim(D::Minus1)?
            .sqrt()?
            .clamp(1e-12, f64::MAX)?,
    )
}

/// CLIP's zero-shot prompt ensembling: `[K·T, P]` text embeddings (T templates per class, class
/// major) → `[K, P]`, each the normalised mean of its class's normalised embeddings.
pub fn ensemble(text: &Tensor, classes: usize) -> Result<Tensor> {
    let (n, p) = text.dims2()?;
    if classes == 0 || n % classes != 0 {
        bail!("{n} text embeddings do not split into {classes} classes of equal template count");
    }
    let t = n / classes;
    let mean = l2_normalize(text)?.reshape((classes, t, p))?.mean(1)?;
    Ok(l2_normalize(&mean)?)
}

/// Part labels of patches.
#[derive(Debug, Clone, PartialEq)]
pub struct PartLabels {
    /// Class per patch, `[B · N]` (row-major over images, then patches).
    pub labels: Vec<u8>,
    /// Softmax probability of the chosen class, `[B · N]`.
    pub confidence: Vec<f32>,
}

/// Labels of dense patch embeddings `[B, N, P]` against the part classes: softmax over the K
/// class scores (cosine similarities divided by `temperature`, pooled over each class's prompts).
pub fn part_labels(dense: &Tensor, classes: &SentenceBank, temperature: f64) -> Result<PartLabels> {
    let (b, n, p) = dense.dims3()?;
    if classes.classes() > 256 || temperature <= 0.0 {
        bail!("part labels need at most 256 classes and a positive temperature");
    }
    let sims = classes.scores(&dense.reshape((b * n, p))?, temperature)?;
    let probs = crate::model::layers::softmax_last_dim(&sims)?.to_vec2::<f32>()?;
    let (mut labels, mut confidence) = (Vec::with_capacity(b * n), Vec::with_capacity(b * n));
    for row in probs {
        let (best, prob) =
            row.iter().enumerate().fold(
                (0, f32::MIN),
                |acc, (i, v)| if *v > acc.1 { (i, *v) } else { acc },
            );
        labels.push(best as u8);
        confidence.push(prob);
    }
    Ok(PartLabels { labels, confidence })
}

/// Attribute probabilities `[B, A]` of image embeddings `[B, P]` from each attribute's positive
/// and negative side (class a of each bank): p = softmax(score⁺, score⁻)₀, scores being cos/τ
/// pooled over each side's sentences.
pub fn attribute_probabilities(
    images: &Tensor,
    positive: &SentenceBank,
    negative: &SentenceBank,
    temperature: f64,
) -> Result<Tensor> {
    if positive.classes() != negative.classes() || temperature <= 0.0 {
        bail!("a negative side per positive one, and a positive temperature");
    }
    let pos = positive.scores(images, temperature)?;
    let neg = negative.scores(images, temperature)?;
    // softmax of two = sigmoid of the difference.
    Ok(candle_nn::ops::sigmoid(&(pos - neg)?)?)
}

/// Soft targets with the uncertain ones marked: `None` where |p − ½| < `margin`.
pub fn with_ignore_margin(probs: &[f32], margin: f32) -> Vec<Option<f32>> {
    probs
        .iter()
        .map(|p| ((p - 0.5).abs() >= margin).then_some(*p))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::sentence_bank::Pooling;
    use super::*;
    use candle_core::Device;

    fn t(v: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
    }

    /// One sentence per class.
    fn bank(classes: &[&[f32]]) -> SentenceBank {
        let per_class: Vec<Tensor> = classes.iter().map(|c| t(c, &[1, c.len()])).collect();
        SentenceBank::new(&per_class, Pooling::Likelihood, 2, &Device::Cpu).unwrap()
    }

    #[test]
    fn ensembles_average_normalised_templates() {
        // Class 0: templates (2, 0) and (0, 1) → normalised mean (½, ½) → (1/√2, 1/√2).
        // Class 1: (0, -3) twice → (0, -1).
        let text = t(&[2.0, 0.0, 0.0, 1.0, 0.0, -3.0, 0.0, -3.0], &[4, 2]);
        let e = ensemble(&text, 2).unwrap().to_vec2::<f32>().unwrap();
        let s = std::f32::consts::FRAC_1_SQRT_2;
        assert!((e[0][0] - s).abs() < 1e-6 && (e[0][1] - s).abs() < 1e-6);
        assert!((e[1][0]).abs() < 1e-6 && (e[1][1] + 1.0).abs() < 1e-6);
        assert!(ensemble(&text, 3).is_err());
    }

    #[test]
    fn part_labels_take_the_closest_class_with_its_softmax_probability() {
        // Two patches; classes along x and y. Patch 0 points along x (cos 1, 0), patch 1 at 45°.
        let dense = t(&[3.0, 0.0, 1.0, 1.01], &[1, 2, 2]);
        let classes = bank(&[&[1.0, 0.0], &[0.0, 1.0]]);
        let l = part_labels(&dense, &classes, 0.5).unwrap();
        assert_eq!(l.labels, vec![0, 1]);
        // softmax(1/0.5, 0/0.5) = e²/(e² + 1).
        let want = (2f32.exp()) / (2f32.exp() + 1.0);
        assert!((l.confidence[0] - want).abs() < 1e-6, "{}", l.confidence[0]);
        assert!(l.confidence[1] > 0.5 && l.confidence[1] < 0.51);
    }

    #[test]
    fn attribute_probabilities_compare_the_two_sentences() {
        let img = t(&[1.0, 0.0], &[1, 2]);
        let pos = bank(&[&[1.0, 0.0], &[0.0, 1.0]]);
        let neg = bank(&[&[0.0, 1.0], &[1.0, 0.0]]);
        let p = attribute_probabilities(&img, &pos, &neg, 0.1)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        // Attribute 0: cos⁺ 1, cos⁻ 0 → σ(10); attribute 1 the reverse.
        let s = 1.0 / (1.0 + (-10f32).exp());
        assert!((p[0][0] - s).abs() < 1e-6 && (p[0][1] - (1.0 - s)).abs() < 1e-6);
        assert_eq!(
            with_ignore_margin(&[0.9, 0.55, 0.3], 0.1),
            vec![Some(0.9), None, Some(0.3)]
        );
    }
}
