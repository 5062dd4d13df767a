//! Attribute metrics as PAR papers report them (DeepMAR, Strong Baseline): label-based mean
//! accuracy (mA) and instance-based accuracy, precision, recall and F1, at threshold 0.5.

pub struct AttributeMetrics {
    pub ma: f64,
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// `probs` and `targets` are `[N][A]`.
pub fn attribute_metrics(probs: &[Vec<f32>], targets: &[Vec<f32>]) -> AttributeMetrics {
    let n = probs.len().max(1);
    let a = targets.first().map_or(0, Vec::len);
    let eps = 1e-12;
    // mA: mean over attributes of (TPR + TNR) / 2.
    let mut ma = 0.0;
    for j in 0..a {
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
        ma += 0.5 * (tp / (p + eps) + tn / (neg + eps));
    }
    let ma = ma / a.max(1) as f64;
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
        ma,
        accuracy,
        precision,
        recall,
        f1: 2.0 * precision * recall / (precision + recall + eps),
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
        // sample0: P={0,2}, G={0}: acc 1/2, prec 1/2, rec 1; sample1: P={1}, G={1,2}: 1/2, 1, 1/2.
        assert!((m.accuracy - 0.5).abs() < 1e-9);
        assert!((m.precision - 0.75).abs() < 1e-9);
        assert!((m.recall - 0.75).abs() < 1e-9);
        assert!((m.f1 - 0.75).abs() < 1e-9);
    }
}
