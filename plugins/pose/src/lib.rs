//! Top-down 2-D human pose estimation as a CLASP task plugin: COCO's 17 keypoints per person box.
//!
//! Samples are person boxes cropped by the host (`image#crop=…`), grown to the model's aspect
//! ratio and padded ×1.25. Head: the patch-token map grown by [`UpsampleHead`] (two deconvolution
//! steps by default: stride 16 → 4), then a 1×1 convolution to 17 heatmaps. Targets: Gaussians
//! of `sigma` heatmap pixels, weighted 0 for unlabelled keypoints; loss: ½·MSE with those
//! weights (MMPose's `JointsMSELoss`). Decoding: maximum + quarter-pixel shift toward the higher
//! neighbour. Metrics: COCO keypoint AP/AR as pycocotools computes them, and PCK@0.2.

pub mod coco_data;
pub mod coco_eval;
pub mod heatmap;
pub mod keypoints;
pub mod metrics;
mod skeleton;

use std::path::{Path, PathBuf};

use clasp_sdk::{
    ensure_paired, export_task, fail, FeatureMaps, Host, Init, Record, Result, Spec, Task,
    TaskConfig, Tensor, UpsampleHead,
};

use coco_data::{Target, TARGET_LEN};
use keypoints::{mirrored, COUNT, NAMES};
use metrics::{instance_score, pose_metrics, predicted};

pub struct PoseTask;

fn heatmaps_of<'h>(host: &'h Host, cfg: &TaskConfig, f: &FeatureMaps<'h>) -> Result<Tensor<'h>> {
    let head = UpsampleHead::from_config(cfg)?;
    let x = head.apply(host, f.patches, f.dim, f.training)?;
    let c_in = head.out_channels(f.dim);
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

fn map_size(output: &Tensor<'_>) -> Result<(usize, usize, usize)> {
    match output.shape()?.as_slice() {
        [b, k, h, w] if *k == COUNT => Ok((*b, *h, *w)),
        other => fail!("heatmaps of shape {other:?}, expected [B, {COUNT}, h, w]"),
    }
}

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
                entry("head", "\"deconv\"", UpsampleHead::HELP),
                entry(
                    "upsample_steps",
                    "2",
                    "doubling steps of the head (2: stride-16 patches → stride-4 heatmaps)",
                ),
                entry("channels", "256", "channels of each upsampling step"),
                entry("sigma", "2.0", "Gaussian target radius, in heatmap pixels"),
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
                    "test_annotations",
                    "\"annotations/person_keypoints_val.json\"",
                    "COCO keypoints file of the evaluation split, under the dataset root",
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
            head_variants: UpsampleHead::VARIANTS.map(String::from).to_vec(),
        }
    }

    fn build_head(&self, host: &Host, cfg: &TaskConfig, dim: usize) -> Result<()> {
        if cfg.f64("sigma")? <= 0.0 {
            fail!("task config `sigma` must be positive");
        }
        // Parameters are created on first use: a dry run on a zero map creates them all.
        heatmaps_of(host, cfg, &FeatureMaps::zeros(host, dim)?).map(|_| ())
    }

    fn forward<'h>(
        &self,
        host: &'h Host,
        cfg: &TaskConfig,
        f: &FeatureMaps<'h>,
    ) -> Result<Tensor<'h>> {
        heatmaps_of(host, cfg, f)
    }

    fn loss<'h>(
        &self,
        host: &'h Host,
        cfg: &TaskConfig,
        output: Tensor<'h>,
        targets: &[Record],
    ) -> Result<Tensor<'h>> {
        let (b, h, w) = map_size(&output)?;
        if b != targets.len() {
            fail!("{b} heatmap sets for {} targets", targets.len());
        }
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
        let (b, h, w) = map_size(&output)?;
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
        let c = m.coco;
        Ok(vec![
            ("AP".into(), c.ap),
            ("AP50".into(), c.ap50),
            ("AP75".into(), c.ap75),
            ("AP_M".into(), c.ap_medium),
            ("AP_L".into(), c.ap_large),
            ("AR".into(), c.ar),
            ("PCK".into(), m.pck),
        ])
    }

    fn dataset(&self, cfg: &TaskConfig, root: &Path, split: &str) -> Result<Vec<Record>> {
        let file = match split {
            "train" => cfg.str("train_annotations")?,
            "test" | "val" => cfg.str("test_annotations")?,
            other => fail!("unknown split `{other}` (train, test)"),
        };
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
