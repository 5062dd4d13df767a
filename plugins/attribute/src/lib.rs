//! Pedestrian attribute recognition as a CLASP task plugin.
//!
//! Head: `linear` (CLS → A logits) or `mlp` (CLS → hidden → ReLU → dropout → A logits), chosen by
//! the `head` config key. Loss: binary cross entropy weighted by each attribute's positive ratio in
//! the training set (DeepMAR's weights, or balanced ones). Metrics: mA, mean per-attribute AUC and
//! instance accuracy/precision/recall/F1; the image-blind level is a constant prediction.

mod chart;
pub mod metrics;
pub mod settings;

use clasp_sdk::table;
use clasp_sdk::{
    ensure_paired, fail, group_of_image, input, FeatureMaps, Host, Init, NamedPredictionSets,
    Outputs, Record, Result, SampleStats, Spec, Split, Task, Tensor,
};
use settings::{AttributeSettings, Head, Weighting};
use std::path::{Path, PathBuf};

/// PA-100K's attributes, in its order (the synthetic tables use the same).
pub const PA100K: [&str; 26] = [
    "Female",
    "AgeOver60",
    "Age18-60",
    "AgeLess18",
    "Front",
    "Side",
    "Back",
    "Hat",
    "Glasses",
    "HandBag",
    "ShoulderBag",
    "Backpack",
    "HoldObjectsInFront",
    "ShortSleeve",
    "LongSleeve",
    "UpperStride",
    "UpperLogo",
    "UpperPlaid",
    "UpperSplice",
    "LowerStripe",
    "LowerPattern",
    "LongCoat",
    "Trousers",
    "Shorts",
    "Skirt&Dress",
    "boots",
];

/// Stateless: what a head learns from the training split (the positive ratios) lives in the
/// head's `pos_ratio` buffer, so concurrent heads never share it and checkpoints keep it.
#[derive(Default)]
pub struct AttributeTask;

/// The head buffer holding each attribute's positive ratio; −1 until `prepare` sets it.
const POS_RATIO: &str = "pos_ratio";

pub fn pos_ratio_buffer<'h>(host: &'h Host) -> Result<Tensor<'h>> {
    host.buffer(POS_RATIO, &[PA100K.len()], Init::Constant(-1.0))
}

fn logits_of<'h>(
    host: &'h Host,
    cfg: &AttributeSettings,
    x: Tensor<'h>,
    dim: usize,
    training: bool,
) -> Result<Tensor<'h>> {
    let a = PA100K.len();
    match cfg.head {
        Head::Linear => x.linear(
            host.param("fc.weight", &[a, dim], Init::TruncNormal(0.02))?,
            Some(host.param("fc.bias", &[a], Init::Zeros)?),
        ),
        Head::Mlp => {
            let hidden = cfg.hidden;
            let h = x
                .linear(
                    host.param("fc1.weight", &[hidden, dim], Init::KaimingUniform)?,
                    Some(host.param("fc1.bias", &[hidden], Init::Zeros)?),
                )?
                .relu()?
                .dropout(cfg.dropout, training)?;
            h.linear(
                host.param("fc2.weight", &[a, hidden], Init::TruncNormal(0.02))?,
                Some(host.param("fc2.bias", &[a], Init::Zeros)?),
            )
        }
    }
}

/// Per-element BCE weights for targets `y` (`[B·A]`, row-major) from the positive ratios;
/// `None` when the loss is unweighted.
pub fn loss_weights(weighting: Weighting, ratio: &[f32], y: &[f32]) -> Option<Vec<f32>> {
    let a = ratio.len();
    // A ratio of exactly 0 or 1 would make balanced weights infinite.
    let clamp = |p: f32| p.clamp(1e-3, 1.0 - 1e-3);
    let weight: fn(f32, bool) -> f32 = match weighting {
        Weighting::Deepmar => |p, pos| if pos { (1.0 - p).exp() } else { p.exp() },
        Weighting::Balanced => |p, pos| if pos { 0.5 / p } else { 0.5 / (1.0 - p) },
        Weighting::None => return None,
    };
    Some(
        y.iter()
            .enumerate()
            .map(|(i, v)| weight(clamp(ratio[i % a]), *v > 0.5))
            .collect(),
    )
}

impl Task for AttributeTask {
    type Config = AttributeSettings;

    fn spec(&self) -> Spec {
        Spec {
            name: "attribute".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description:
                "recognize the visual attributes of a pedestrian: gender, age, viewpoint, \
                          accessories and clothing"
                    .into(),
            labels: PA100K.iter().map(|s| s.to_string()).collect(),
            input_size: [256, 128],
            metrics: [
                "mA",
                "mAUC",
                "accuracy",
                "precision",
                "recall",
                "f1",
                "attributes_scored",
            ]
            .map(String::from)
            .to_vec(),
            primary_metric: "mA".into(),
            result_files: vec![
                (
                    "pred".into(),
                    "prediction table: a probability per attribute".into(),
                ),
                ("gt".into(), "label table (PA-100K columns)".into()),
            ],
            // The heads: the values of the settings' `head` choice.
            ..Default::default()
        }
    }

    fn build_head(&self, host: &Host, cfg: &AttributeSettings, dim: usize) -> Result<()> {
        pos_ratio_buffer(host)?;
        self.forward(host, cfg, &FeatureMaps::zeros(host, dim)?)
            .map(|_| ())
    }

    fn prepare(&self, host: &Host, _cfg: &AttributeSettings, train: &[Record]) -> Result<()> {
        let a = PA100K.len();
        if train.is_empty() {
            fail!("the training split is empty: no positive ratios");
        }
        let mut ratio = vec![0.0f32; a];
        for r in train {
            if r.values.len() != a {
                fail!(
                    "{}: {} attribute values, expected {a}",
                    r.image,
                    r.values.len()
                );
            }
            for (p, v) in ratio.iter_mut().zip(r.values.iter()) {
                *p += *v;
            }
        }
        ratio.iter_mut().for_each(|p| *p /= train.len() as f32);
        host.assign(pos_ratio_buffer(host)?, host.constant(&[a], &ratio)?)
    }

    fn forward<'h>(
        &self,
        host: &'h Host,
        cfg: &AttributeSettings,
        f: &FeatureMaps<'h>,
    ) -> Result<Outputs<'h>> {
        let x = cfg.pool.apply(host, f)?;
        Ok(logits_of(host, cfg, x, cfg.pool.width(f.dim), f.training)?.into())
    }

    fn loss<'h>(
        &self,
        host: &'h Host,
        cfg: &AttributeSettings,
        outputs: &Outputs<'h>,
        targets: &[Record],
    ) -> Result<Tensor<'h>> {
        let output = outputs.single()?;
        let a = PA100K.len();
        let mut y = Vec::with_capacity(targets.len() * a);
        for t in targets {
            if t.values.len() != a {
                fail!(
                    "{}: {} attribute values, expected {a}",
                    t.image,
                    t.values.len()
                );
            }
            y.extend_from_slice(&t.values);
        }
        let target = host.constant(&[targets.len(), a], &y)?;
        let (_, ratio) = match cfg.weighting {
            Weighting::None => return host.bce_with_logits(output, target, None),
            _ => pos_ratio_buffer(host)?.to_cpu()?,
        };
        if ratio.iter().any(|p| *p < 0.0) {
            fail!("positive ratios unknown: the host must call `prepare` with the training split");
        }
        let weight = loss_weights(cfg.weighting, &ratio, &y)
            .map(|w| host.constant(&[targets.len(), a], &w))
            .transpose()?;
        host.bce_with_logits(output, target, weight)
    }

    fn decode(
        &self,
        _host: &Host,
        _cfg: &AttributeSettings,
        outputs: &Outputs<'_>,
    ) -> Result<Vec<Record>> {
        outputs.single()?.sigmoid()?.row_records()
    }

    fn evaluate(
        &self,
        _cfg: &AttributeSettings,
        predictions: &[Record],
        targets: &[Record],
    ) -> Result<Vec<(String, f64)>> {
        ensure_paired(predictions, targets)?;
        let probs: Vec<Vec<f32>> = predictions.iter().map(|r| r.values.to_vec()).collect();
        let gts: Vec<Vec<f32>> = targets.iter().map(|r| r.values.to_vec()).collect();
        Ok(metric_list(metrics::attribute_metrics(&probs, &gts)))
    }

    fn sample_statistics(
        &self,
        _cfg: &AttributeSettings,
        predictions: &[Record],
        targets: &[Record],
    ) -> Option<Result<Vec<SampleStats>>> {
        Some(sample_rows(predictions, targets))
    }

    fn metrics_of_samples(
        &self,
        _cfg: &AttributeSettings,
        samples: &[SampleStats],
    ) -> Option<Result<Vec<(String, f64)>>> {
        let a = PA100K.len();
        if let Some(bad) = samples.iter().find(|s| s.values.len() != 3 * a) {
            return Some(Err(clasp_sdk::Error::data(format!(
                "a sample row of {} values, expected {}",
                bad.values.len(),
                3 * a
            ))));
        }
        let part = |s: &SampleStats, k: usize| -> Vec<f32> {
            s.values[k * a..(k + 1) * a]
                .iter()
                .map(|v| *v as f32)
                .collect()
        };
        let probs: Vec<Vec<f32>> = samples.iter().map(|s| part(s, 0)).collect();
        let gts: Vec<Vec<f32>> = samples.iter().map(|s| part(s, 1)).collect();
        let scored: Vec<bool> = samples.first().map_or(vec![true; a], |s| {
            part(s, 2).iter().map(|f| *f > 0.5).collect()
        });
        Some(Ok(metric_list(metrics::attribute_metrics_of(
            &probs, &gts, &scored,
        ))))
    }

    /// Every test image gets the training split's positive rate of each attribute: a constant
    /// predictor (mA 0.5 at any rate, AUC 0.5).
    fn blind_predictions(
        &self,
        _cfg: &AttributeSettings,
        train: &[Record],
        test: &[Record],
    ) -> Option<Result<NamedPredictionSets>> {
        let a = PA100K.len();
        let mut rate = vec![0.0f32; a];
        for r in train.iter().filter(|r| r.values.len() == a) {
            for (s, v) in rate.iter_mut().zip(r.values.iter()) {
                *s += *v / train.len() as f32;
            }
        }
        let constant = test
            .iter()
            .map(|t| Record {
                image: t.image.clone(),
                values: rate.clone().into(),
                ..Default::default()
            })
            .collect();
        Some(Ok(vec![("training positive rate".into(), constant)]))
    }

    fn dataset(&self, cfg: &AttributeSettings, root: &Path, split: Split) -> Result<Vec<Record>> {
        let name = match split {
            Split::Train => &cfg.train_table,
            Split::Val => &cfg.val_table,
            Split::Test => &cfg.test_table,
        };
        if split == Split::Val && !root.join(name).exists() {
            return Ok(Vec::new());
        }
        let t = table::read(&root.join(name), &root.join("images"))?;
        if t.attributes != PA100K {
            fail!(
                "{}: columns are not PA-100K's 26 attributes in order",
                root.join(name).display()
            );
        }
        Ok(t.rows)
    }

    fn evaluate_files(
        &self,
        cfg: &AttributeSettings,
        inputs: &[(String, PathBuf)],
    ) -> Option<Result<Vec<(String, f64)>>> {
        Some(score_files(inputs).and_then(|(p, t)| self.evaluate(cfg, &p, &t)))
    }

    fn visualize(
        &self,
        _cfg: &AttributeSettings,
        image: &Path,
        prediction: &Record,
        out: &Path,
    ) -> Option<Result<()>> {
        Some(chart::bar_chart(image, &PA100K, &prediction.values, out))
    }

    /// A mirrored person keeps their identity and attributes.
    fn flip(
        &self,
        _cfg: &AttributeSettings,
        record: &Record,
        _size: [usize; 2],
    ) -> Option<Result<Record>> {
        Some(Ok(record.clone()))
    }

    fn describe(&self, _cfg: &AttributeSettings, prediction: &Record) -> Result<String> {
        let mut on: Vec<(&str, f32)> = PA100K
            .iter()
            .zip(prediction.values.iter())
            .filter(|(_, p)| **p > 0.5)
            .map(|(a, p)| (*a, *p))
            .collect();
        on.sort_by(|a, b| b.1.total_cmp(&a.1));
        if on.is_empty() {
            return Ok("no attribute above 0.5".into());
        }
        Ok(on
            .iter()
            .map(|(a, p)| format!("{a} {p:.2}"))
            .collect::<Vec<_>>()
            .join(", "))
    }
}

/// The metrics in the spec's order. `attributes_scored` counts the attributes that have both
/// classes in the split (the others are left out of mA and mAUC).
fn metric_list(m: metrics::AttributeMetrics) -> Vec<(String, f64)> {
    vec![
        ("mA".into(), m.ma),
        ("mAUC".into(), m.mean_auc),
        ("accuracy".into(), m.accuracy),
        ("precision".into(), m.precision),
        ("recall".into(), m.recall),
        ("f1".into(), m.f1),
        ("attributes_scored".into(), m.scored as f64),
    ]
}

/// A row per image: its 26 probabilities, its 26 labels, then 26 flags of the attributes the
/// whole split scores (both classes present) — a resample averages over those, not over the
/// ones it happens to hold both classes of.
fn sample_rows(predictions: &[Record], targets: &[Record]) -> Result<Vec<SampleStats>> {
    ensure_paired(predictions, targets)?;
    let a = PA100K.len();
    let scored: Vec<f64> = (0..a)
        .map(|j| {
            let pos = targets
                .iter()
                .filter(|t| t.values.get(j).is_some_and(|v| *v > 0.5))
                .count();
            (pos > 0 && pos < targets.len()) as u8 as f64
        })
        .collect();
    let mut rows = Vec::with_capacity(targets.len());
    for (p, t) in predictions.iter().zip(targets) {
        if p.values.len() != a || t.values.len() != a {
            fail!("{}: expected {a} probabilities and {a} labels", t.image);
        }
        let mut values: Vec<f64> = p
            .values
            .iter()
            .chain(&t.values)
            .map(|v| *v as f64)
            .collect();
        values.extend(&scored);
        rows.push(SampleStats {
            group: group_of_image(&t.image),
            values: values.into(),
        });
    }
    Ok(rows)
}

/// The predictions of a prediction table (`pred`) in the order of the label table (`gt`), and
/// the label rows.
fn score_files(inputs: &[(String, PathBuf)]) -> Result<(Vec<Record>, Vec<Record>)> {
    let (pred_file, gt_file) = (input(inputs, "pred")?, input(inputs, "gt")?);
    let none = Path::new("");
    let gt = table::read(gt_file, none)?;
    let pred = table::read_cells(pred_file, none, table::Cells::Probabilities)?;
    if pred.attributes != gt.attributes {
        fail!(
            "{}: columns {:?} differ from the label table's {:?}",
            pred_file.display(),
            pred.attributes,
            gt.attributes
        );
    }
    let mut by_image: std::collections::HashMap<&str, &Record> =
        pred.rows.iter().map(|r| (r.image.as_str(), r)).collect();
    let mut predictions = Vec::with_capacity(gt.rows.len());
    for r in &gt.rows {
        match by_image.remove(r.image.as_str()) {
            Some(p) => predictions.push(p.clone()),
            None => fail!("{}: no prediction for `{}`", pred_file.display(), r.image),
        }
    }
    if let Some(extra) = by_image.keys().next() {
        fail!(
            "{}: `{extra}` is not in the label table {}",
            pred_file.display(),
            gt_file.display()
        );
    }
    Ok((predictions, gt.rows))
}

#[cfg(feature = "export")]
clasp_sdk::export_task!(AttributeTask);

#[cfg(test)]
mod tests {
    use super::*;

    /// Probabilities and labels of `n` images that no image determines (a fixed hash).
    fn records(n: usize, salt: u64) -> Vec<Record> {
        (0..n)
            .map(|i| {
                let values: Vec<f32> = (0..PA100K.len())
                    .map(|j| {
                        let h =
                            (i as u64 * 7919 + j as u64 * 104_729 + salt).wrapping_mul(2654435761);
                        ((h >> 8) % 1000) as f32 / 1000.0
                    })
                    .collect();
                Record {
                    image: format!("{i}.jpg").into(),
                    values: values.into(),
                    ..Default::default()
                }
            })
            .collect()
    }

    fn labels(n: usize) -> Vec<Record> {
        records(n, 5)
            .into_iter()
            .map(|mut r| {
                r.values = r.values.iter().map(|v| (*v > 0.6) as u8 as f32).collect();
                r
            })
            .collect()
    }

    #[test]
    fn sample_rows_give_back_the_metrics() {
        let (task, cfg) = (AttributeTask, AttributeSettings::default());
        let (preds, targets) = (records(40, 1), labels(40));
        let whole = task.evaluate(&cfg, &preds, &targets).unwrap();
        let rows = task
            .sample_statistics(&cfg, &preds, &targets)
            .unwrap()
            .unwrap();
        assert_eq!(rows.len(), 40);
        let again = task.metrics_of_samples(&cfg, &rows).unwrap().unwrap();
        assert_eq!(again, whole);
    }

    /// The constant predictor scores exactly the chance level: mA ½ and AUC ½ on every
    /// attribute with both classes.
    #[test]
    fn the_blind_level_is_one_half() {
        let (task, cfg) = (AttributeTask, AttributeSettings::default());
        let (train, test) = (labels(60), labels(30));
        let named = task
            .blind_predictions(&cfg, &train, &test)
            .unwrap()
            .unwrap();
        assert_eq!(named.len(), 1);
        let m = task.evaluate(&cfg, &named[0].1, &test).unwrap();
        let get = |k: &str| m.iter().find(|(n, _)| n == k).unwrap().1;
        assert_eq!((get("mA"), get("mAUC")), (0.5, 0.5));
    }

    #[test]
    fn weights_follow_the_positive_ratio() {
        let y = [1.0, 0.0, 1.0, 0.0];
        let ratio = [0.2, 0.2];
        let dm = loss_weights(Weighting::Deepmar, &ratio, &y).unwrap();
        let e = |x: f32| x.exp();
        assert_eq!(dm, vec![e(0.8), e(0.2), e(0.8), e(0.2)]);
        let bal = loss_weights(Weighting::Balanced, &ratio, &y).unwrap();
        assert_eq!(bal, vec![2.5, 0.625, 2.5, 0.625]);
        // Balanced: positives and negatives of an attribute weigh the same in expectation.
        assert!((0.2 * bal[0] - 0.8 * bal[1]).abs() < 1e-6);
        assert!(loss_weights(Weighting::None, &ratio, &y).is_none());
    }
}
