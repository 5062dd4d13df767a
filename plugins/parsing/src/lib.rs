//! Human parsing as a CLASP task plugin: LIP's 20 classes per pixel.
//!
//! Head: the patch-token map grown by [`UpsampleHead`] (`deconv` or `nearest`, two doubling
//! steps by default: stride 16 → 4), then a 1×1 convolution to class scores. Loss: per-pixel
//! cross entropy against the label map sampled at the score grid's pixel centres, unlabelled
//! pixels (255) ignored. Decoding keeps the class scores; metrics upsample them bilinearly to the
//! label map's size before the argmax, and accumulate one confusion matrix over the whole split
//! (mIoU, pixel accuracy, mean class accuracy). Mirrored training images swap left and right
//! classes.

pub mod confusion;
pub mod label_dirs;
pub mod lip;
mod overlay;
pub mod resize;

use std::path::{Path, PathBuf};

use clasp_sdk::{
    ensure_paired, export_task, fail, group_of_image, FeatureMaps, Host, Init, NamedPredictionSets,
    Record, Result, SampleStats, Spec, Task, TaskConfig, Tensor, UpsampleHead,
};

use confusion::{Confusion, SegmentationMetrics};
use lip::{mirrored_class, CLASS_NAMES, IGNORE};
use resize::upsampled_argmax;

pub struct ParsingTask;

/// The label map of a target record as the host loaded it: `(height, width, class ids)`.
fn label_map(r: &Record) -> Result<(usize, usize, &[f32])> {
    let n = r.ints.len();
    if n < 2 || r.label_map.is_none() {
        fail!(
            "{}: no label map was loaded (the record needs `label_map`)",
            r.image
        );
    }
    let (h, w) = (r.ints[n - 2] as usize, r.ints[n - 1] as usize);
    if h * w != r.values.len() {
        fail!(
            "{}: {} label values for a {h}×{w} map",
            r.image,
            r.values.len()
        );
    }
    Ok((h, w, r.values.as_slice()))
}

/// The class scores of a decoded prediction: `([C, h, w], scores)`.
fn scores(p: &Record) -> Result<([usize; 3], &[f32])> {
    match p.ints.as_slice() {
        [c, h, w] if (*c * *h * *w) as usize == p.values.len() => {
            Ok(([*c as usize, *h as usize, *w as usize], p.values.as_slice()))
        }
        other => fail!(
            "prediction for {}: ints {other:?} do not describe its {} scores as [C, h, w]",
            p.image,
            p.values.len()
        ),
    }
}

/// Counts prediction `p` (class scores) against target `t` (a loaded label map).
fn add_prediction(confusion: &mut Confusion, p: &Record, t: &Record) -> Result<()> {
    let (shape, s) = scores(p)?;
    let (lh, lw, labels) = label_map(t)?;
    let predicted = upsampled_argmax(s, shape, [lh, lw]);
    let truth: Vec<u8> = labels.iter().map(|v| *v as u8).collect();
    confusion
        .add(&truth, &predicted)
        .map_err(|e| clasp_sdk::Error(format!("{}: {}", t.image, e.0)))
}

/// One-hot class scores `[C, H, W]` of the most frequent class at each pixel of the training
/// label maps (all loaded at one size; ignored pixels do not count).
fn prior_map(train: &[Record]) -> Result<Record> {
    let k = CLASS_NAMES.len();
    let mut size = None;
    let mut counts: Vec<u32> = Vec::new();
    for t in train {
        let (h, w, labels) = label_map(t)?;
        match size {
            None => {
                size = Some((h, w));
                counts = vec![0; k * h * w];
            }
            Some(s) if s != (h, w) => fail!(
                "{}: a {h}×{w} label map among maps of {}×{}",
                t.image,
                s.0,
                s.1
            ),
            Some(_) => {}
        }
        for (i, c) in labels.iter().enumerate() {
            let c = *c as usize;
            if c < k {
                counts[i * k + c] += 1;
            }
        }
    }
    let Some((h, w)) = size else {
        fail!("no training label maps to build a prior from");
    };
    let mut values = vec![0.0f32; k * h * w];
    for i in 0..h * w {
        let row = &counts[i * k..(i + 1) * k];
        let best = (0..k)
            .max_by_key(|c| (row[*c], std::cmp::Reverse(*c)))
            .unwrap_or(0);
        values[best * h * w + i] = 1.0;
    }
    Ok(Record {
        values: values.into(),
        ints: vec![k as i64, h as i64, w as i64].into(),
        ..Default::default()
    })
}

fn metric_list(m: SegmentationMetrics) -> Vec<(String, f64)> {
    vec![
        ("mIoU".into(), m.miou),
        ("pixel_accuracy".into(), m.pixel_accuracy),
        ("mean_accuracy".into(), m.mean_accuracy),
    ]
}

fn logits_of<'h>(host: &'h Host, cfg: &TaskConfig, f: &FeatureMaps<'h>) -> Result<Tensor<'h>> {
    let head = UpsampleHead::from_config(cfg)?;
    let x = head.apply(host, f.patches, f.dim, f.training)?;
    let c_in = head.out_channels(f.dim);
    let k = CLASS_NAMES.len();
    x.conv2d(
        host.param("cls.weight", &[k, c_in, 1, 1], Init::TruncNormal(0.01))?,
        Some(host.param("cls.bias", &[k], Init::Zeros)?),
        1,
        0,
    )
}

impl Task for ParsingTask {
    fn new() -> Self {
        Self
    }

    fn spec(&self) -> Spec {
        let entry = |k: &str, v: &str, h: &str| (k.to_string(), v.to_string(), h.to_string());
        Spec {
            name: "parsing".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "segment a person into body parts and clothing: hair, face, arms, \
                          legs, upper clothes, pants, skirt, shoes"
                .into(),
            labels: CLASS_NAMES.iter().map(|s| s.to_string()).collect(),
            input_size: [256, 128],
            metrics: ["mIoU", "pixel_accuracy", "mean_accuracy"]
                .map(String::from)
                .to_vec(),
            primary_metric: "mIoU".into(),
            config: vec![
                entry("head", "\"deconv\"", UpsampleHead::HELP),
                entry(
                    "upsample_steps",
                    "2",
                    "doubling steps of the head (2: stride-16 patches → stride-4 scores)",
                ),
                entry("channels", "128", "channels of each upsampling step"),
                entry("train_split", "\"train\"", "LIP split trained on"),
                entry(
                    "val_split",
                    "\"val\"",
                    "LIP split that epochs and recipes are chosen on (no `{split}_id.txt`: none)",
                ),
                entry(
                    "test_split",
                    "\"test\"",
                    "LIP split scored once, after selection (real LIP: its `val`)",
                ),
            ],
            head_variants: UpsampleHead::VARIANTS.map(String::from).to_vec(),
        }
    }

    fn build_head(&self, host: &Host, cfg: &TaskConfig, dim: usize) -> Result<()> {
        // Parameters are created on first use: a dry run on a zero map creates them all.
        logits_of(host, cfg, &FeatureMaps::zeros(host, dim)?).map(|_| ())
    }

    fn forward<'h>(
        &self,
        host: &'h Host,
        cfg: &TaskConfig,
        f: &FeatureMaps<'h>,
    ) -> Result<Tensor<'h>> {
        logits_of(host, cfg, f)
    }

    fn loss<'h>(
        &self,
        host: &'h Host,
        _cfg: &TaskConfig,
        output: Tensor<'h>,
        targets: &[Record],
    ) -> Result<Tensor<'h>> {
        let (b, h, w) = match output.shape()?.as_slice() {
            [b, _, h, w] => (*b, *h, *w),
            other => fail!("class scores of shape {other:?}, expected [B, C, h, w]"),
        };
        if b != targets.len() {
            fail!("{b} score maps for {} targets", targets.len());
        }
        // The label at each score pixel's centre.
        let mut ids = Vec::with_capacity(b * h * w);
        for t in targets {
            let (lh, lw, labels) = label_map(t)?;
            if lh % h != 0 || lw % w != 0 {
                fail!(
                    "{}: a {lh}×{lw} label map is not a whole multiple of the {h}×{w} score map",
                    t.image
                );
            }
            let (sy, sx) = (lh / h, lw / w);
            for i in 0..h {
                for j in 0..w {
                    ids.push(labels[(i * sy + sy / 2) * lw + j * sx + sx / 2]);
                }
            }
        }
        let target = host.constant(&[b, h, w], &ids)?;
        host.cross_entropy(output, target, 0.0, Some(IGNORE as i64))
    }

    fn decode(&self, _host: &Host, _cfg: &TaskConfig, output: Tensor<'_>) -> Result<Vec<Record>> {
        let (shape, data) = output.to_cpu()?;
        let [b, c, h, w]: [usize; 4] = match shape.as_slice() {
            [b, c, h, w] => [*b, *c, *h, *w],
            other => fail!("class scores of shape {other:?}, expected [B, C, h, w]"),
        };
        let per = c * h * w;
        Ok((0..b)
            .map(|i| Record {
                values: data[i * per..(i + 1) * per].to_vec().into(),
                ints: vec![c as i64, h as i64, w as i64].into(),
                ..Default::default()
            })
            .collect())
    }

    fn evaluate(
        &self,
        _cfg: &TaskConfig,
        predictions: &[Record],
        targets: &[Record],
    ) -> Result<Vec<(String, f64)>> {
        ensure_paired(predictions, targets)?;
        let mut confusion = Confusion::new(CLASS_NAMES.len(), Some(IGNORE));
        for (p, t) in predictions.iter().zip(targets) {
            add_prediction(&mut confusion, p, t)?;
        }
        Ok(metric_list(confusion.metrics()))
    }

    /// A row per image: its confusion matrix (truth × prediction pixel counts), grouped by the
    /// image.
    fn sample_statistics(
        &self,
        _cfg: &TaskConfig,
        predictions: &[Record],
        targets: &[Record],
    ) -> Option<Result<Vec<SampleStats>>> {
        Some((|| {
            ensure_paired(predictions, targets)?;
            let mut rows = Vec::with_capacity(targets.len());
            for (p, t) in predictions.iter().zip(targets) {
                let mut confusion = Confusion::new(CLASS_NAMES.len(), Some(IGNORE));
                add_prediction(&mut confusion, p, t)?;
                rows.push(SampleStats {
                    group: group_of_image(&t.image),
                    values: confusion.counts().iter().map(|c| *c as f64).collect(),
                });
            }
            Ok(rows)
        })())
    }

    fn metrics_of_samples(
        &self,
        _cfg: &TaskConfig,
        samples: &[SampleStats],
    ) -> Option<Result<Vec<(String, f64)>>> {
        Some((|| {
            let mut confusion = Confusion::new(CLASS_NAMES.len(), Some(IGNORE));
            for s in samples {
                confusion.add_counts(&s.values)?;
            }
            Ok(metric_list(confusion.metrics()))
        })())
    }

    /// The training split's most frequent class at each pixel (of label maps at the model's
    /// input size), the same map for every test image.
    fn blind_predictions(
        &self,
        _cfg: &TaskConfig,
        train: &[Record],
        test: &[Record],
    ) -> Option<Result<NamedPredictionSets>> {
        Some((|| {
            let prior = prior_map(train)?;
            let predictions = test
                .iter()
                .map(|t| Record {
                    image: t.image.clone(),
                    ..prior.clone()
                })
                .collect();
            Ok(vec![("per-pixel prior".into(), predictions)])
        })())
    }

    fn dataset(&self, cfg: &TaskConfig, root: &Path, split: &str) -> Result<Vec<Record>> {
        let name = match split {
            "train" => cfg.str("train_split")?,
            "val" => cfg.str("val_split")?,
            "test" => cfg.str("test_split")?,
            other => fail!("unknown split `{other}` (train, val, test)"),
        };
        if split == "val" && !root.join(format!("{name}_id.txt")).exists() {
            return Ok(Vec::new());
        }
        let split = name;
        lip::read_split(root, &split)
    }

    /// Rows reversed, left and right classes swapped.
    fn flip(
        &self,
        _cfg: &TaskConfig,
        record: &Record,
        _size: [usize; 2],
    ) -> Option<Result<Record>> {
        Some(label_map(record).map(|(h, w, labels)| {
            let mut values = Vec::with_capacity(labels.len());
            for row in labels.chunks(w).take(h) {
                values.extend(row.iter().rev().map(|v| {
                    if *v as u8 == IGNORE {
                        *v
                    } else {
                        mirrored_class(*v as u8) as f32
                    }
                }));
            }
            Record {
                values: values.into(),
                ..record.clone()
            }
        }))
    }

    /// The flip test: the mean of the class scores for the image and, mirrored back with left
    /// and right classes swapped, for its mirror image.
    fn merge_flip(
        &self,
        _cfg: &TaskConfig,
        prediction: &Record,
        mirrored: &Record,
    ) -> Option<Result<Record>> {
        Some((|| {
            let ([c, h, w], a) = scores(prediction)?;
            let (shape, b) = scores(mirrored)?;
            if shape != [c, h, w] {
                fail!("scores of shape {:?} and {shape:?} (mirrored)", [c, h, w]);
            }
            let plane = h * w;
            let mut values = a.to_vec();
            for k in 0..c {
                // The mirror image's class k is the image's class mirrored_class(k).
                let to = mirrored_class(k as u8) as usize * plane;
                for y in 0..h {
                    for x in 0..w {
                        values[to + y * w + x] += b[k * plane + y * w + (w - 1 - x)];
                    }
                }
            }
            values.iter_mut().for_each(|v| *v *= 0.5);
            Ok(Record {
                values: values.into(),
                ..prediction.clone()
            })
        })())
    }

    fn evaluate_files(
        &self,
        _cfg: &TaskConfig,
        inputs: &[(String, PathBuf)],
    ) -> Option<Result<Vec<(String, f64)>>> {
        Some((|| {
            let dir = |name: &str| match inputs.iter().find(|(k, _)| k == name) {
                Some((_, p)) => Ok(p.clone()),
                None => fail!(
                    "parsing scores folders of PNG label maps: pass --pred-dir P --gt-dir G \
                     (missing --{})",
                    name.replace('_', "-")
                ),
            };
            let m = label_dirs::score_label_dirs(&dir("pred_dir")?, &dir("gt_dir")?)?;
            Ok(metric_list(m))
        })())
    }

    fn visualize(
        &self,
        _cfg: &TaskConfig,
        image: &Path,
        prediction: &Record,
        out: &Path,
    ) -> Option<Result<()>> {
        Some((|| {
            let (w, h) = match clasp_sdk::draw::image::image_dimensions(image) {
                Ok(d) => d,
                Err(e) => fail!("reading {}: {e}", image.display()),
            };
            let (shape, s) = scores(prediction)?;
            let labels = upsampled_argmax(s, shape, [h as usize, w as usize]);
            overlay::draw_overlay(image, &labels, out)
        })())
    }

    /// The parts found, largest first, as shares of the image.
    fn describe(&self, _cfg: &TaskConfig, prediction: &Record) -> Result<String> {
        let ([c, h, w], s) = scores(prediction)?;
        let labels = upsampled_argmax(s, [c, h, w], [h, w]);
        let mut counts = vec![0usize; c];
        labels.iter().for_each(|l| counts[*l as usize] += 1);
        let mut found: Vec<(usize, usize)> = counts
            .iter()
            .enumerate()
            .filter(|(k, n)| *k != 0 && **n > 0)
            .map(|(k, n)| (k, *n))
            .collect();
        found.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        let parts: Vec<String> = found
            .iter()
            .map(|(k, n)| {
                let name = CLASS_NAMES.get(*k).copied().unwrap_or("?");
                format!("{name} {:.0}%", 100.0 * *n as f64 / labels.len() as f64)
            })
            .collect();
        Ok(if parts.is_empty() {
            "background only".into()
        } else {
            parts.join(", ")
        })
    }
}

export_task!(ParsingTask);

#[cfg(test)]
mod scoring_tests {
    use super::*;

    /// A loaded label map of `rows` (class ids), as the host hands it over.
    fn target(rows: &[&[u8]]) -> Record {
        let (h, w) = (rows.len(), rows[0].len());
        Record {
            image: "x.jpg".into(),
            values: rows
                .iter()
                .flat_map(|r| r.iter().map(|c| *c as f32))
                .collect(),
            ints: vec![h as i64, w as i64].into(),
            label_map: Some("x.png".into()).into(),
        }
    }

    /// Class scores `[C, h, w]` that favour a class chosen by a fixed hash of the position.
    fn prediction(i: usize, h: usize, w: usize) -> Record {
        let c = CLASS_NAMES.len();
        let mut values = vec![0.0f32; c * h * w];
        for p in 0..h * w {
            values[((i * 31 + p * 7) % 4) * h * w + p] = 1.0;
        }
        Record {
            values: values.into(),
            ints: vec![c as i64, h as i64, w as i64].into(),
            ..Default::default()
        }
    }

    #[test]
    fn sample_rows_give_back_the_metrics() {
        let (task, cfg) = (ParsingTask::new(), TaskConfig::default());
        let targets: Vec<Record> = (0..6)
            .map(|i| target(&[&[0, 1, 2, 3], &[(i % 4) as u8, 1, 255, 2]]))
            .collect();
        let preds: Vec<Record> = (0..6).map(|i| prediction(i, 1, 2)).collect();
        let whole = task.evaluate(&cfg, &preds, &targets).unwrap();
        let rows = task
            .sample_statistics(&cfg, &preds, &targets)
            .unwrap()
            .unwrap();
        let again = task.metrics_of_samples(&cfg, &rows).unwrap().unwrap();
        assert_eq!(again, whole);
    }

    /// The prior is each pixel's most frequent training class (ignored pixels aside), the
    /// same map for every test image.
    #[test]
    fn the_prior_map_is_the_most_frequent_class_per_pixel() {
        let (task, cfg) = (ParsingTask::new(), TaskConfig::default());
        let train = [
            target(&[&[1, 1], &[2, 2]]),
            target(&[&[1, 5], &[2, 255]]),
            target(&[&[3, 1], &[255, 0]]),
        ];
        let test = [target(&[&[1, 1], &[2, 2]]), target(&[&[1, 1], &[2, 0]])];
        let named = task
            .blind_predictions(&cfg, &train, &test)
            .unwrap()
            .unwrap();
        let (name, preds) = &named[0];
        assert_eq!(name, "per-pixel prior");
        // Prior [[1, 1], [2, 0 or 2]]: pixel (1, 1) saw 2 once, 255 once, 0 once → tie of 0 and
        // 2 broken toward the smaller id, 0.
        let m = task.evaluate(&cfg, &preds[..1], &test[..1]).unwrap();
        assert!((m[1].1 - 0.75).abs() < 1e-12, "pixel accuracy {m:?}");
        let m = task.evaluate(&cfg, &preds[1..], &test[1..]).unwrap();
        assert_eq!(m[1].1, 1.0, "{m:?}");
    }
}
