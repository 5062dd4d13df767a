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
mod skeleton;

use std::path::{Path, PathBuf};

use clasp_sdk::{
    ensure_paired, export_task, fail, FeatureMaps, Host, Init, NamedPredictionSets, Pool, Record,
    Result, SampleStats, Spec, Task, TaskConfig, Tensor, UpsampleHead,
};

use coco_data::{Target, TARGET_LEN};
use keypoints::{mirrored, COUNT, NAMES};
use metrics::{
    instance_score, metrics_of_rows, pose_metrics, pose_rows, predicted, PoseMetrics, PoseRow,
};

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

fn heatmaps_of<'h>(host: &'h Host, cfg: &TaskConfig, f: &FeatureMaps<'h>) -> Result<Tensor<'h>> {
    let head = UpsampleHead::from_config(cfg)?;
    let (x, c_in) = if cfg.bool("global_context")? {
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

fn head_output<'h>(host: &'h Host, cfg: &TaskConfig, f: &FeatureMaps<'h>) -> Result<Tensor<'h>> {
    if cfg.str("head")? == REGRESSION {
        regression::positions_of(host, cfg, f)
    } else {
        heatmaps_of(host, cfg, f)
    }
}

/// The `head` value of the regression head; the others are [`UpsampleHead`]'s.
const REGRESSION: &str = "regression";

fn file_of(inputs: &[(String, PathBuf)], name: &str) -> Result<PathBuf> {
    match inputs.iter().find(|(k, _)| k == name) {
        Some((_, p)) => Ok(p.clone()),
        None => fail!(
            "pose scores COCO keypoint results against COCO ground truth: pass --results \
             RESULTS.json --gt person_keypoints.json (missing --{name})"
        ),
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| clasp_sdk::Error(format!("reading {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| clasp_sdk::Error(format!("{}: {e}", path.display())))
}

impl Task for PoseTask {
    fn new() -> Self {
        Self
    }

    fn spec(&self) -> Spec {
        let entry = |k: &str, v: &str, h: &str| (k.to_string(), v.to_string(), h.to_string());
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
            config: vec![
                entry(
                    "head",
                    "\"deconv\"",
                    &format!(
                        "{}; or regression: the pooled features (`pool`) through one linear \
                         layer to the keypoints' positions, L1 loss (DeepPose)",
                        UpsampleHead::HELP
                    ),
                ),
                entry("pool", "\"cls+mean\"", Pool::HELP),
                entry(
                    "hidden",
                    "0",
                    "regression head: width of a hidden ReLU layer (0: none)",
                ),
                entry(
                    "upsample_steps",
                    "2",
                    "doubling steps of the head (2: stride-16 patches → stride-4 heatmaps)",
                ),
                entry("channels", "256", "channels of each upsampling step"),
                entry("sigma", "2.0", "Gaussian target radius, in heatmap pixels"),
                entry(
                    "global_context",
                    "false",
                    "give every patch token the CLS token and its (x, y) place in the crop \
                     before the head: which way the person faces and where a token sits, which \
                     a convolutional head on frozen features cannot see otherwise",
                ),
                entry(
                    "aspect_ratio",
                    "0.5",
                    "width / height of the person crops: the model's input (256×128 → 0.5)",
                ),
                entry(
                    "box_padding",
                    "1.25",
                    "person boxes are enlarged by this factor",
                ),
                entry(
                    "images",
                    "\"images\"",
                    "image folder under the dataset root",
                ),
                entry(
                    "train_annotations",
                    "\"annotations/person_keypoints_train.json\"",
                    "COCO keypoints file of the training split, under the dataset root",
                ),
                entry(
                    "val_annotations",
                    "\"annotations/person_keypoints_val.json\"",
                    "COCO keypoints file that epochs and recipes are chosen on (a missing file: \
                     no validation split)",
                ),
                entry(
                    "test_annotations",
                    "\"annotations/person_keypoints_test.json\"",
                    "COCO keypoints file scored once, after selection (real COCO: val2017)",
                ),
                entry(
                    "score_threshold",
                    "0.2",
                    "keypoints above this confidence make a person's score and are drawn",
                ),
                entry(
                    "pck_threshold",
                    "0.2",
                    "PCK: a keypoint is correct within this fraction of its box's longer side",
                ),
            ],
            head_variants: UpsampleHead::VARIANTS
                .into_iter()
                .chain([REGRESSION])
                .map(String::from)
                .collect(),
        }
    }

    fn build_head(&self, host: &Host, cfg: &TaskConfig, dim: usize) -> Result<()> {
        if cfg.f64("sigma")? <= 0.0 {
            fail!("task config `sigma` must be positive");
        }
        // Parameters are created on first use: a dry run on a zero map creates them all.
        head_output(host, cfg, &FeatureMaps::zeros(host, dim)?).map(|_| ())
    }

    fn forward<'h>(
        &self,
        host: &'h Host,
        cfg: &TaskConfig,
        f: &FeatureMaps<'h>,
    ) -> Result<Tensor<'h>> {
        head_output(host, cfg, f)
    }

    fn loss<'h>(
        &self,
        host: &'h Host,
        cfg: &TaskConfig,
        output: Tensor<'h>,
        targets: &[Record],
    ) -> Result<Tensor<'h>> {
        let kind = Output::of(&output)?;
        if kind.batch() != targets.len() {
            fail!("{} outputs for {} targets", kind.batch(), targets.len());
        }
        let Output::Heatmaps { b, h, w } = kind else {
            return regression::loss(host, output, targets);
        };
        let sigma = cfg.f64("sigma")? as f32;
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

    fn decode(&self, _host: &Host, _cfg: &TaskConfig, output: Tensor<'_>) -> Result<Vec<Record>> {
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
        cfg: &TaskConfig,
        predictions: &[Record],
        targets: &[Record],
    ) -> Result<Vec<(String, f64)>> {
        ensure_paired(predictions, targets)?;
        let m = pose_metrics(
            predictions,
            targets,
            cfg.f64("score_threshold")? as f32,
            cfg.f64("pck_threshold")?,
        )?;
        Ok(metric_list(&m))
    }

    /// A row per person: ground truth, detection and PCK counts ([`metrics::PoseRow`]), grouped
    /// by image (the persons of one picture are drawn together).
    fn sample_statistics(
        &self,
        cfg: &TaskConfig,
        predictions: &[Record],
        targets: &[Record],
    ) -> Option<Result<Vec<SampleStats>>> {
        Some((|| {
            ensure_paired(predictions, targets)?;
            let rows = pose_rows(
                predictions,
                targets,
                cfg.f64("score_threshold")? as f32,
                cfg.f64("pck_threshold")?,
            )?;
            Ok(rows
                .iter()
                .map(|r| SampleStats {
                    group: r.person.image_id as u64,
                    values: r.to_values().into(),
                })
                .collect())
        })())
    }

    fn metrics_of_samples(
        &self,
        _cfg: &TaskConfig,
        samples: &[SampleStats],
    ) -> Option<Result<Vec<(String, f64)>>> {
        Some((|| {
            let rows: Vec<PoseRow> = samples
                .iter()
                .map(|s| PoseRow::from_values(&s.values))
                .collect::<Result<_>>()?;
            Ok(metric_list(&metrics_of_rows(&rows)?))
        })())
    }

    fn blind_predictions(
        &self,
        _cfg: &TaskConfig,
        train: &[Record],
        test: &[Record],
    ) -> Option<Result<NamedPredictionSets>> {
        Some(blind::blind_poses(train, test))
    }

    fn dataset(&self, cfg: &TaskConfig, root: &Path, split: &str) -> Result<Vec<Record>> {
        let file = match split {
            "train" => cfg.str("train_annotations")?,
            "val" => cfg.str("val_annotations")?,
            "test" => cfg.str("test_annotations")?,
            other => fail!("unknown split `{other}` (train, val, test)"),
        };
        if split == "val" && !root.join(&file).exists() {
            return Ok(Vec::new());
        }
        coco_data::read_split(
            &root.join(file),
            &root.join(cfg.str("images")?),
            cfg.f64("aspect_ratio")?,
            cfg.f64("box_padding")?,
        )
    }

    /// Keypoints mirrored in the crop, left and right swapped.
    fn flip(
        &self,
        _cfg: &TaskConfig,
        record: &Record,
        _size: [usize; 2],
    ) -> Option<Result<Record>> {
        if record.values.len() != TARGET_LEN {
            return Some(Err(clasp_sdk::Error(format!(
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
        _cfg: &TaskConfig,
        inputs: &[(String, PathBuf)],
    ) -> Option<Result<Vec<(String, f64)>>> {
        Some((|| {
            let gt: coco_eval::GroundTruth = read_json(&file_of(inputs, "gt")?)?;
            let results: Vec<coco_eval::Detection> = read_json(&file_of(inputs, "results")?)?;
            let s = coco_eval::evaluate(&gt, &results)?;
            let names = [
                "AP", "AP50", "AP75", "AP_M", "AP_L", "AR", "AR50", "AR75", "AR_M", "AR_L",
            ];
            Ok(names
                .iter()
                .zip(s.as_array())
                .map(|(n, v)| (n.to_string(), v))
                .collect())
        })())
    }

    fn visualize(
        &self,
        cfg: &TaskConfig,
        image: &Path,
        prediction: &Record,
        out: &Path,
    ) -> Option<Result<()>> {
        Some((|| {
            let kps = predicted(prediction)?;
            skeleton::draw_skeleton(image, &kps, cfg.f64("score_threshold")? as f32, out)
        })())
    }

    fn describe(&self, cfg: &TaskConfig, prediction: &Record) -> Result<String> {
        let kps = predicted(prediction)?;
        let t = cfg.f64("score_threshold")? as f32;
        let found = kps.iter().filter(|k| k[2] > t).count();
        Ok(format!(
            "{found}/{COUNT} keypoints above {t:.2}, person score {:.3}",
            instance_score(&kps, t)
        ))
    }
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

    fn cfg() -> TaskConfig {
        TaskConfig::parse(r#"{"score_threshold": 0.2, "pck_threshold": 0.2}"#).unwrap()
    }

    #[test]
    fn sample_rows_give_back_the_metrics() {
        let task = PoseTask::new();
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
        let task = PoseTask::new();
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
