//! Attribute metrics as PAR papers report them (DeepMAR, Strong Baseline): label-based mean
//! accuracy (mA) and instance-based accuracy, precision, recall and F1, at threshold 0.5 — and
//! the mean per-attribute ROC AUC, which reads a weak model's scores without a threshold.
//!
//! An attribute with no positive or no negative sample in the split has no TPR or TNR (and no
//! AUC): it is left out of mA and mAUC and counted, instead of being scored 0.5.

pub struct AttributeMetrics {
    pub ma: f64,
    pub mean_auc: f64,
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Attributes with both classes present: those mA and mAUC average.
    pub scored: usize,
}

/// ROC AUC of `scores` for `labels`: the probability that a positive scores above a negative,
/// ties counting one half (the Mann–Whitney statistic, as sklearn's `roc_auc_score` computes it).
/// `None` without positives or negatives.
pub fn roc_auc(scores: &[f32], labels: &[bool]) -> Option<f64> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*a].total_cmp(&scores[*b]));
    let (mut rank_sum, mut positives) = (0.0, 0usize);
    let mut i = 0;
    while i < order.len() {
        // Tied scores share the mean of their ranks (1-based).
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mean_rank = (i + j) as f64 / 2.0 + 1.0;
        for k in &order[i..=j] {
            if labels[*k] {
                rank_sum += mean_rank;
                positives += 1;
            }
        }
        i = j + 1;
    }
    let negatives = scores.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let (p, n) = (positives as f64, negatives as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// `probs` and `targets` are `[N][A]`; mA and mAUC average over the attributes with both classes.
pub fn attribute_metrics(probs: &[Vec<f32>], targets: &[Vec<f32>]) -> AttributeMetrics {
    let a = targets.first().map_or(0, Vec::len);
    attribute_metrics_of(probs, targets, &vec![true; a])
}

/// [`attribute_metrics`] with mA and mAUC over the attributes `chosen` marks (those of them
/// without both classes in these samples are left out too).
pub fn attribute_metrics_of(
    probs: &[Vec<f32>],
    targets: &[Vec<f32>],
    chosen: &[bool],
) -> AttributeMetrics {
    let n = probs.len().max(1);
    let a = targets.first().map_or(0, Vec::len);
    let eps = 1e-12;
    // mA: mean over attributes of (TPR + TNR) / 2; mAUC alike.
    let (mut ma, mut auc, mut scored) = (0.0, 0.0, 0usize);
    for j in (0..a).filter(|j| chosen.get(*j).copied().unwrap_or(false)) {
        let (mut tp, mut p, mut tn, mut neg) = (0.0, 0.0, 0.0, 0.0);
        for (pr, gt) in probs.iter().zip(targets) {
            let pred = pr[j] > 0.5;
            if gt[j] > 0.5 {
                p += 1.0;
                tp += pred as u8 as f64;
            } else {
                neg += 1.0;
                tn += (!pred) as u8 as f64;
            }
        }
        if p == 0.0 || neg == 0.0 {
            continue;
        }
        ma += 0.5 * (tp / p + tn / neg);
        let scores: Vec<f32> = probs.iter().map(|pr| pr[j]).collect();
        let labels: Vec<bool> = targets.iter().map(|gt| gt[j] > 0.5).collect();
        auc += roc_auc(&scores, &labels).expect("both classes present");
        scored += 1;
    }
    let per_attribute = |sum: f64| {
        if scored == 0 {
            f64::NAN
        } else {
            sum / scored as f64
        }
    };
    // Instance-based: per sample over its predicted set P and true set G.
    let (mut acc, mut prec, mut rec) = (0.0, 0.0, 0.0);
    for (pr, gt) in probs.iter().zip(targets) {
        let (mut inter, mut union, mut np, mut ng) = (0.0, 0.0, 0.0, 0.0);
        for j in 0..a {
            let (p, g) = (pr[j] > 0.5, gt[j] > 0.5);
            inter += (p && g) as u8 as f64;
            union += (p || g) as u8 as f64;
            np += p as u8 as f64;
            ng += g as u8 as f64;
        }
        acc += inter / (union + eps);
        prec += inter / (np + eps);
        rec += inter / (ng + eps);
    }
    let (accuracy, precision, recall) = (acc / n as f64, prec / n as f64, rec / n as f64);
    AttributeMetrics {
        ma: per_attribute(ma),
        mean_auc: per_attribute(auc),
        accuracy,
        precision,
        recall,
        f1: 2.0 * precision * recall / (precision + recall + eps),
        scored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_case() {
        // Two samples, three attributes.
        let probs = vec![vec![0.9, 0.2, 0.7], vec![0.1, 0.8, 0.4]];
        let gt = vec![vec![1.0, 0.0, 0.0], vec![0.0, 1.0, 1.0]];
        let m = attribute_metrics(&probs, &gt);
        // attr0: TPR 1, TNR 1 → 1; attr1: 1, 1 → 1; attr2: TPR 0 (1 pos missed), TNR 0 → 0.
        assert!((m.ma - 2.0 / 3.0).abs() < 1e-9);
        // AUC: attr0 and attr1 rank their positive first (1), attr2 ranks it last (0).
        assert!((m.mean_auc - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(m.scored, 3);
        // sample0: P={0,2}, G={0}: acc 1/2, prec 1/2, rec 1; sample1: P={1}, G={1,2}: 1/2, 1, 1/2.
        assert!((m.accuracy - 0.5).abs() < 1e-9);
        assert!((m.precision - 0.75).abs() < 1e-9);
        assert!((m.recall - 0.75).abs() < 1e-9);
        assert!((m.f1 - 0.75).abs() < 1e-9);
    }

    #[test]
    fn an_attribute_without_positives_is_left_out_not_scored_half() {
        // attr1 has no positive: only attr0 (perfect) is averaged.
        let probs = vec![vec![0.9, 0.2], vec![0.1, 0.8]];
        let gt = vec![vec![1.0, 0.0], vec![0.0, 0.0]];
        let m = attribute_metrics(&probs, &gt);
        assert_eq!(m.scored, 1);
        assert!((m.ma - 1.0).abs() < 1e-9 && (m.mean_auc - 1.0).abs() < 1e-9);
    }

    #[test]
    fn auc_counts_ties_as_half_as_sklearn_does() {
        // sklearn.metrics.roc_auc_score([1, 0, 1, 0], [0.8, 0.8, 0.3, 0.1]) = 0.625
        let auc = roc_auc(&[0.8, 0.8, 0.3, 0.1], &[true, false, true, false]).unwrap();
        assert!((auc - 0.625).abs() < 1e-12, "{auc}");
        // A constant score ranks nothing: 0.5.
        assert_eq!(roc_auc(&[0.3; 4], &[true, false, true, false]), Some(0.5));
        assert_eq!(roc_auc(&[0.3, 0.4], &[false, false]), None);
    }
}
