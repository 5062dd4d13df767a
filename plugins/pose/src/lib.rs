//! Top-down 2-D human pose estimation as a CLASP task plugin: COCO's 17 keypoints per person box.
//!
//! Samples are person boxes cropped by the host (`image#crop=…`), grown to the model's aspect
//! ratio and padded ×1.25. Head: the patch-token map grown by [`UpsampleHead`] (two deconvolution
//! steps by default: stride 16 → 4), then a 1×1 convolution to 17 heatmaps. Targets: Gaussians
//! of `sigma` heatmap pixels, weighted 0 for unlabelled keypoints; loss: ½·MSE with those
//! weights (MMPose's `JointsMSELoss`). Decoding: maximum + quarter-pixel shift toward the higher
//! neighbour. `global_context` joins the CLS token and each token's place to the patch map first;
//! `head = "regression"` replaces the heatmaps by positions regressed from the pooled features
//! ([`regression`]). Metrics: COCO keypoint AP/AR as pycocotools computes them, and PCK@0.2.

pub mod blind;
pub mod coco_data;
pub mod coco_eval;
mod context;
pub mod heatmap;
pub mod keypoints;
pub mod metrics;
pub mod regression;
pub mod settings;
mod skeleton;

use std::path::{Path, PathBuf};

use clasp_sdk::{
    ensure_paired, export_task, fail, input, FeatureMaps, Host, Init, NamedPredictionSets, Outputs,
    Record, Result, SampleStats, Spec, Split, Task, Tensor, UpsampleHead,
};
use settings::PoseSettings;

use coco_data::{Target, TARGET_LEN};
use keypoints::{mirrored, COUNT, NAMES};
use metrics::{
    instance_score, metrics_of_rows, pose_metrics, pose_rows, predicted, PoseMetrics, PoseRow,
};

#[derive(Default)]
pub struct PoseTask;

/// The task's metrics, in the spec's order.
fn metric_list(m: &PoseMetrics) -> Vec<(String, f64)> {
    let c = &m.coco;
    vec![
        ("AP".into(), c.ap),
        ("AP50".into(), c.ap50),
        ("AP75".into(), c.ap75),
        ("AP_M".into(), c.ap_medium),
        ("AP_L".into(), c.ap_large),
        ("AR".into(), c.ar),
        ("PCK".into(), m.pck),
    ]
}

fn heatmaps_of<'h>(
    host: &'h Host,
    cfg: &PoseSettings,
    head: UpsampleHead,
    f: &FeatureMaps<'h>,
) -> Result<Tensor<'h>> {
    let (x, c_in) = if cfg.global_context {
        context::with_context(host, f)?
    } else {
        (f.patches, f.dim)
    };
    let x = head.apply(host, x, c_in, f.training)?;
    let c_in = head.out_channels(c_in);
    x.conv2d(
        host.param(
            "final.weight",
            &[COUNT, c_in, 1, 1],
            Init::TruncNormal(0.001),
        )?,
        Some(host.param("final.bias", &[COUNT], Init::Zeros)?),
        1,
        0,
    )
}

/// The head's output: heatmaps, or positions from the regression head.
enum Output {
    Heatmaps { b: usize, h: usize, w: usize },
    Positions { b: usize },
}

impl Output {
    fn of(output: &Tensor<'_>) -> Result<Self> {
        match output.shape()?.as_slice() {
            &[b, k, h, w] if k == COUNT => Ok(Self::Heatmaps { b, h, w }),
            &[b, k, 2] if k == COUNT => Ok(Self::Positions { b }),
            other => fail!(
                "head output of shape {other:?}, expected heatmaps [B, {COUNT}, h, w] or \
                 positions [B, {COUNT}, 2]"
            ),
        }
    }

    fn batch(&self) -> usize {
        match *self {
            Self::Heatmaps { b, .. } | Self::Positions { b } => b,
        }
    }
}

fn head_output<'h>(host: &'h Host, cfg: &PoseSettings, f: &FeatureMaps<'h>) -> Result<Tensor<'h>> {
    match cfg.upsampling() {
        Some(head) => heatmaps_of(host, cfg, head, f),
        None => regression::positions_of(host, cfg, f),
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| clasp_sdk::Error::data(format!("reading {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| clasp_sdk::Error::data(format!("{}: {e}", path.display())))
}

impl Task for PoseTask {
    type Config = PoseSettings;

    fn spec(&self) -> Spec {
        Spec {
            name: "pose".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "locate the body keypoints of a person: eyes, ears, shoulders, elbows, \
                          wrists, hips, knees and ankles"
                .into(),
            labels: NAMES.iter().map(|s| s.to_string()).collect(),
            input_size: [256, 192],
            metrics: ["AP", "AP50", "AP75", "AP_M", "AP_L", "AR", "PCK"]
                .map(String::from)
                .to_vec(),
            primary_metric: "AP".into(),
            result_files: vec![
                ("results".into(), "COCO keypoint results (JSON)".into()),
                (
                    "gt".into(),
                    "COCO person_keypoints ground truth (JSON)".into(),
                ),
            ],
            // The heads: the values of the settings' `head` choice.
            ..Default::default()
        }
    }

    fn forward<'h>(
        &self,
        host: &'h Host,
        cfg: &PoseSettings,
        f: &FeatureMaps<'h>,
    ) -> Result<Outputs<'h>> {
        Ok(head_output(host, cfg, f)?.into())
    }

    fn loss<'h>(
        &self,
        host: &'h Host,
        cfg: &PoseSettings,
        outputs: &Outputs<'h>,
        targets: &[Record],
    ) -> Result<Tensor<'h>> {
        let output = outputs.single()?;
        let kind = Output::of(&output)?;
        if kind.batch() != targets.len() {
            fail!("{} outputs for {} targets", kind.batch(), targets.len());
        }
        let Output::Heatmaps { b, h, w } = kind else {
            return regression::loss(host, output, targets);
        };
        let sigma = cfg.sigma as f32;
        let (mut maps, mut weights) = (Vec::new(), Vec::new());
        for t in targets {
            let target = Target::parse(t)?;
            let (m, wt) = heatmap::encode(&target.keypoints, [h, w], sigma);
            maps.extend(m);
            weights.extend(wt);
        }
        let target = host.constant(&[b, COUNT, h, w], &maps)?;
        let weight = host.constant(&[b, COUNT, 1, 1], &weights)?;
        host.mse(output, target, Some(weight))?.affine(0.5, 0.0)
    }

    fn decode(
        &self,
        _host: &Host,
        _cfg: &PoseSettings,
        outputs: &Outputs<'_>,
    ) -> Result<Vec<Record>> {
        let output = outputs.single()?;
        let Output::Heatmaps { b, h, w } = Output::of(&output)? else {
            return regression::decode(output);
        };
        let (_, data) = output.to_cpu()?;
        let per = COUNT * h * w;
        Ok((0..b)
            .map(|i| Record {
                values: heatmap::decode(&data[i * per..(i + 1) * per], [h, w])
                    .into_iter()
                    .flatten()
                    .collect::<Vec<f32>>()
                    .into(),
                ..Default::default()
            })
            .collect())
    }

    fn evaluate(
        &self,
        cfg: &PoseSettings,
        predictions: &[Record],
        targets: &[Record],
    ) -> Result<Vec<(String, f64)>> {
        ensure_paired(predictions, targets)?;
        let m = pose_metrics(
            predictions,
            targets,
            cfg.score_threshold as f32,
            cfg.pck_threshold,
        )?;
        Ok(metric_list(&m))
    }

    fn sample_statistics(
        &self,
        cfg: &PoseSettings,
        predictions: &[Record],
        targets: &[Record],
    ) -> Option<Result<Vec<SampleStats>>> {
        Some(person_rows(cfg, predictions, targets))
    }

    fn metrics_of_samples(
        &self,
        _cfg: &PoseSettings,
        samples: &[SampleStats],
    ) -> Option<Result<Vec<(String, f64)>>> {
        let rows: Result<Vec<PoseRow>> = samples
            .iter()
            .map(|s| PoseRow::from_values(&s.values))
            .collect();
        Some(rows.and_then(|rows| Ok(metric_list(&metrics_of_rows(&rows)?))))
    }

    fn blind_predictions(
        &self,
        _cfg: &PoseSettings,
        train: &[Record],
        test: &[Record],
    ) -> Option<Result<NamedPredictionSets>> {
        Some(blind::blind_poses(train, test))
    }

    fn dataset(&self, cfg: &PoseSettings, root: &Path, split: Split) -> Result<Vec<Record>> {
        let file = match split {
            Split::Train => &cfg.train_annotations,
            Split::Val => &cfg.val_annotations,
            Split::Test => &cfg.test_annotations,
        };
        if split == Split::Val && !root.join(file).exists() {
            return Ok(Vec::new());
        }
        coco_data::read_split(
            &root.join(file),
            &root.join(&cfg.images),
            cfg.aspect_ratio,
            cfg.box_padding,
        )
    }

    /// Keypoints mirrored in the crop, left and right swapped.
    fn flip(
        &self,
        _cfg: &PoseSettings,
        record: &Record,
        _size: [usize; 2],
    ) -> Option<Result<Record>> {
        if record.values.len() != TARGET_LEN {
            return Some(Err(clasp_sdk::Error::data(format!(
                "{}: not a pose target ({} values)",
                record.image,
                record.values.len()
            ))));
        }
        let mut values = record.values.to_vec();
        for k in 0..COUNT {
            let src = &record.values[3 * k..3 * k + 3];
            let dst = 3 * mirrored(k);
            values[dst..dst + 3].copy_from_slice(&if src[2] > 0.0 {
                [1.0 - src[0], src[1], src[2]]
            } else {
                [0.0, 0.0, 0.0]
            });
        }
        Some(Ok(Record {
            values: values.into(),
            ..record.clone()
        }))
    }

    fn evaluate_files(
        &self,
        _cfg: &PoseSettings,
        inputs: &[(String, PathBuf)],
    ) -> Option<Result<Vec<(String, f64)>>> {
        Some(score_files(inputs))
    }

    fn visualize(
        &self,
        cfg: &PoseSettings,
        image: &Path,
        prediction: &Record,
        out: &Path,
    ) -> Option<Result<()>> {
        let threshold = cfg.score_threshold as f32;
        Some(
            predicted(prediction)
                .and_then(|kps| skeleton::draw_skeleton(image, &kps, threshold, out)),
        )
    }

    fn describe(&self, cfg: &PoseSettings, prediction: &Record) -> Result<String> {
        let kps = predicted(prediction)?;
        let t = cfg.score_threshold as f32;
        let found = kps.iter().filter(|k| k[2] > t).count();
        Ok(format!(
            "{found}/{COUNT} keypoints above {t:.2}, person score {:.3}",
            instance_score(&kps, t)
        ))
    }
}

/// A row per person: ground truth, detection and PCK counts ([`metrics::PoseRow`]), grouped by
/// image (the persons of one picture are drawn together).
fn person_rows(
    cfg: &PoseSettings,
    predictions: &[Record],
    targets: &[Record],
) -> Result<Vec<SampleStats>> {
    ensure_paired(predictions, targets)?;
    let threshold = cfg.score_threshold as f32;
    let rows = pose_rows(predictions, targets, threshold, cfg.pck_threshold)?;
    Ok(rows
        .iter()
        .map(|r| SampleStats {
            group: r.person.image_id as u64,
            values: r.to_values().into(),
        })
        .collect())
}

/// pycocotools' keypoint summary of a COCO results file (`results`) against its ground truth
/// (`gt`).
fn score_files(inputs: &[(String, PathBuf)]) -> Result<Vec<(String, f64)>> {
    let gt: coco_eval::GroundTruth = read_json(input(inputs, "gt")?)?;
    let results: Vec<coco_eval::Detection> = read_json(input(inputs, "results")?)?;
    let s = coco_eval::evaluate(&gt, &results)?;
    let names = [
        "AP", "AP50", "AP75", "AP_M", "AP_L", "AR", "AR50", "AR75", "AR_M", "AR_L",
    ];
    Ok(names
        .iter()
        .zip(s.as_array())
        .map(|(n, v)| (n.to_string(), v))
        .collect())
}

export_task!(PoseTask);

#[cfg(test)]
mod scoring_tests {
    use super::*;

    /// A person in a 64×128 crop at the image's origin: keypoint k at (0.3 + 0.02·k·sign, 0.05·k)
    /// (the left side to the image's right: seen from the front), all labelled.
    fn target(image_id: i64, shift: f32) -> Record {
        let mut values = Vec::with_capacity(TARGET_LEN);
        for k in 0..COUNT {
            let side = if k % 2 == 1 { 1.0 } else { -1.0 };
            values.extend([
                0.5 + shift + 0.02 * k as f32 * side,
                0.05 * k as f32 + 0.05,
                2.0,
            ]);
        }
        values.extend([0.0, 0.0, 64.0, 128.0]);
        values.extend([8.0, 8.0, 48.0, 112.0]);
        values.push(48.0 * 112.0);
        Record {
            image: format!("{image_id}.jpg").into(),
            values: values.into(),
            ints: vec![image_id, image_id + 100].into(),
            ..Default::default()
        }
    }

    /// The target's keypoints as a prediction, moved by `noise` and with confidence `c`.
    fn prediction(t: &Record, noise: f32, c: f32) -> Record {
        Record {
            values: t.values[..3 * COUNT]
                .chunks(3)
                .enumerate()
                .flat_map(|(k, kp)| [kp[0] + noise * (k % 3) as f32, kp[1] - noise, c])
                .collect(),
            ..Default::default()
        }
    }

    fn cfg() -> PoseSettings {
        PoseSettings::default()
    }

    #[test]
    fn sample_rows_give_back_the_metrics() {
        let task = PoseTask;
        let targets: Vec<Record> = (1..=8).map(|i| target(i, 0.0)).collect();
        let preds: Vec<Record> = targets
            .iter()
            .enumerate()
            .map(|(i, t)| prediction(t, 0.01 * i as f32, 0.3 + 0.08 * i as f32))
            .collect();
        let whole = task.evaluate(&cfg(), &preds, &targets).unwrap();
        let rows = task
            .sample_statistics(&cfg(), &preds, &targets)
            .unwrap()
            .unwrap();
        assert!(
            whole[0].1 > 0.0 && whole[0].1 < 1.0,
            "a mixed case: {whole:?}"
        );
        assert_eq!(
            task.metrics_of_samples(&cfg(), &rows).unwrap().unwrap(),
            whole
        );
    }

    /// Persons all in one pose: the median pose is that pose (AP 1); one shifted test person
    /// falls below it.
    #[test]
    fn the_median_pose_is_the_training_persons_median() {
        let task = PoseTask;
        let train: Vec<Record> = (1..=5).map(|i| target(i, 0.0)).collect();
        let test = vec![target(10, 0.0), target(11, 0.0)];
        let named = task
            .blind_predictions(&cfg(), &train, &test)
            .unwrap()
            .unwrap();
        let names: Vec<&str> = named.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["median pose", "median pose of the true view"]);
        for (_, preds) in &named {
            let m = task.evaluate(&cfg(), preds, &test).unwrap();
            assert!((m[0].1 - 1.0).abs() < 1e-9, "{m:?}");
        }
        let far = vec![target(12, 0.3)];
        let m = task.evaluate(&cfg(), &named[0].1[..1], &far).unwrap();
        assert!(m[0].1 < 0.5, "{m:?}");
    }
}
