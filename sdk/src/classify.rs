//! What a single-label classification task shares: class-id targets for the loss, decoding
//! logits into probabilities and a class, and accuracy metrics. A record's class is `ints[0]`.

use crate::abi::Record;
use crate::host::{Host, Result, Tensor};
use crate::{ensure_paired, fail};

/// The class ids of `targets` as a `[N]` tensor for [`Host::cross_entropy`].
pub fn class_targets<'h>(host: &'h Host, targets: &[Record]) -> Result<Tensor<'h>> {
    let ids: Vec<f32> = targets
        .iter()
        .map(|t| class_of(t).map(|c| c as f32))
        .collect::<Result<_>>()?;
    host.constant(&[ids.len()], &ids)
}

/// One record per row of `logits` `[N, C]`: softmax probabilities as `values`, the most likely
/// class as `ints[0]`.
pub fn decode_classes(logits: Tensor<'_>) -> Result<Vec<Record>> {
    let (shape, data) = logits.to_cpu()?;
    let &[_, c] = shape.as_slice() else {
        fail!("logits of shape {shape:?}, expected [N, C]");
    };
    Ok(data
        .chunks(c.max(1))
        .map(|row| {
            let max = row.iter().copied().fold(f32::MIN, f32::max);
            let e: Vec<f32> = row.iter().map(|v| (v - max).exp()).collect();
            let z: f32 = e.iter().sum();
            Record {
                values: e.iter().map(|v| v / z).collect::<Vec<_>>().into(),
                ints: vec![argmax(row) as i64].into(),
                ..Default::default()
            }
        })
        .collect())
}

/// `accuracy` and `balanced_accuracy` (the mean recall of the classes present) of predicted
/// classes against target classes.
pub fn accuracy(predictions: &[Record], targets: &[Record]) -> Result<Vec<(String, f64)>> {
    ensure_paired(predictions, targets)?;
    let mut per_class: std::collections::BTreeMap<i64, (usize, usize)> = Default::default();
    for (p, t) in predictions.iter().zip(targets) {
        let entry = per_class.entry(class_of(t)?).or_default();
        entry.0 += (class_of(p)? == class_of(t)?) as usize;
        entry.1 += 1;
    }
    let hits: usize = per_class.values().map(|(h, _)| h).sum();
    let recall: f64 = per_class.values().map(|(h, n)| *h as f64 / *n as f64).sum();
    let classes = per_class.len().max(1) as f64;
    Ok(vec![
        ("accuracy".into(), hits as f64 / targets.len().max(1) as f64),
        ("balanced_accuracy".into(), recall / classes),
    ])
}

/// The index of the largest of `scores` (the first among equals; 0 when empty).
pub fn argmax(scores: &[f32]) -> usize {
    (0..scores.len())
        .rev()
        .max_by(|a, b| scores[*a].total_cmp(&scores[*b]))
        .unwrap_or(0)
}

fn class_of(r: &Record) -> Result<i64> {
    match r.ints.first() {
        Some(c) if *c >= 0 => Ok(*c),
        _ => fail!("{}: no class id (ints[0])", r.image),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(c: i64) -> Record {
        Record {
            ints: vec![c].into(),
            ..Default::default()
        }
    }

    #[test]
    fn balanced_accuracy_is_the_mean_recall_of_present_classes() {
        let t: Vec<Record> = [0, 0, 0, 1].map(class).to_vec();
        let p: Vec<Record> = [0, 0, 1, 0].map(class).to_vec();
        let m = accuracy(&p, &t).unwrap();
        assert_eq!(m[0].1, 0.5);
        assert!((m[1].1 - (2.0 / 3.0 + 0.0) / 2.0).abs() < 1e-12);
        assert!(accuracy(&p[..1], &t).is_err());
    }
}
