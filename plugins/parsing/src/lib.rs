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
pub mod settings;

use std::path::{Path, PathBuf};

use clasp_sdk::{
    ensure_paired, export_task, fail, group_of_image, input, FeatureMaps, Host, Init,
    NamedPredictionSets, Outputs, Record, Result, SampleStats, Spec, Split, Task, Tensor,
};

use confusion::{Confusion, SegmentationMetrics};
use lip::{mirrored_class, CLASS_NAMES, IGNORE};
use resize::upsampled_argmax;
use settings::ParsingSettings;

#[derive(Default)]
pub struct ParsingTask;

/// The label map of a target record as the host loaded it: `(height, width, class ids)`.
fn label_map(r: &Record) -> Result<(usize, usize, &[f32])> {
    let (Some(_), &[h, w]) = (r.label_map.as_ref().into_option(), r.shape.as_slice()) else {
        fail!(
            "{}: no label map was loaded (the record needs `label_map`)",
            r.image
        );
    };
    let (h, w) = (h as usize, w as usize);
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
    match p.shape.as_slice() {
        [c, h, w] if (*c * *h * *w) as usize == p.values.len() => {
            Ok(([*c as usize, *h as usize, *w as usize], p.values.as_slice()))
        }
        other => fail!(
            "prediction for {}: shape {other:?} does not describe its {} scores as [C, h, w]",
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
        .map_err(|e| clasp_sdk::Error::data(format!("{}: {}", t.image, e.message)))
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
        shape: vec![k as u64, h as u64, w as u64].into(),
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

fn logits_of<'h>(host: &'h Host, cfg: &ParsingSettings, f: &FeatureMaps<'h>) -> Result<Tensor<'h>> {
    let head = cfg.upsampling();
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
    type Config = ParsingSettings;

    fn spec(&self) -> Spec {
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
            result_files: vec![
                (
                    "pred_dir".into(),
                    "folder of predicted PNG label maps".into(),
                ),
                (
                    "gt_dir".into(),
                    "folder of ground-truth PNG label maps".into(),
                ),
            ],
            // The heads: the values of the settings' `head` choice.
            ..Default::default()
        }
    }

    fn forward<'h>(
        &self,
        host: &'h Host,
        cfg: &ParsingSettings,
        f: &FeatureMaps<'h>,
    ) -> Result<Outputs<'h>> {
        Ok(logits_of(host, cfg, f)?.into())
    }

    fn loss<'h>(
        &self,
        host: &'h Host,
        _cfg: &ParsingSettings,
        outputs: &Outputs<'h>,
        targets: &[Record],
    ) -> Result<Tensor<'h>> {
        let output = outputs.single()?;
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

    fn decode(
        &self,
        _host: &Host,
        _cfg: &ParsingSettings,
        outputs: &Outputs<'_>,
    ) -> Result<Vec<Record>> {
        let (shape, data) = outputs.single()?.to_cpu()?;
        let [b, c, h, w]: [usize; 4] = match shape.as_slice() {
            [b, c, h, w] => [*b, *c, *h, *w],
            other => fail!("class scores of shape {other:?}, expected [B, C, h, w]"),
        };
        let per = c * h * w;
        Ok((0..b)
            .map(|i| Record {
                values: data[i * per..(i + 1) * per].to_vec().into(),
                shape: vec![c as u64, h as u64, w as u64].into(),
                ..Default::default()
            })
            .collect())
    }

    fn evaluate(
        &self,
        _cfg: &ParsingSettings,
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

    fn sample_statistics(
        &self,
        _cfg: &ParsingSettings,
        predictions: &[Record],
        targets: &[Record],
    ) -> Option<Result<Vec<SampleStats>>> {
        Some(image_rows(predictions, targets))
    }

    fn metrics_of_samples(
        &self,
        _cfg: &ParsingSettings,
        samples: &[SampleStats],
    ) -> Option<Result<Vec<(String, f64)>>> {
        let mut confusion = Confusion::new(CLASS_NAMES.len(), Some(IGNORE));
        let counted: Result<()> = samples
            .iter()
            .try_for_each(|s| confusion.add_counts(&s.values));
        Some(counted.map(|()| metric_list(confusion.metrics())))
    }

    /// The training split's most frequent class at each pixel (of label maps at the model's
    /// input size), the same map for every test image.
    fn blind_predictions(
        &self,
        _cfg: &ParsingSettings,
        train: &[Record],
        test: &[Record],
    ) -> Option<Result<NamedPredictionSets>> {
        Some(prior_map(train).map(|prior| {
            let predictions = test
                .iter()
                .map(|t| Record {
                    image: t.image.clone(),
                    ..prior.clone()
                })
                .collect();
            vec![("per-pixel prior".into(), predictions)]
        }))
    }

    fn dataset(&self, cfg: &ParsingSettings, root: &Path, split: Split) -> Result<Vec<Record>> {
        let name = match split {
            Split::Train => &cfg.train_split,
            Split::Val => &cfg.val_split,
            Split::Test => &cfg.test_split,
        };
        if split == Split::Val && !root.join(format!("{name}_id.txt")).exists() {
            return Ok(Vec::new());
        }
        lip::read_split(root, name)
    }

    /// Rows reversed, left and right classes swapped.
    fn flip(
        &self,
        _cfg: &ParsingSettings,
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
        _cfg: &ParsingSettings,
        prediction: &Record,
        mirrored: &Record,
    ) -> Option<Result<Record>> {
        Some(merge_mirrored(prediction, mirrored))
    }

    fn evaluate_files(
        &self,
        _cfg: &ParsingSettings,
        inputs: &[(String, PathBuf)],
    ) -> Option<Result<Vec<(String, f64)>>> {
        let dirs = input(inputs, "pred_dir").and_then(|p| Ok((p, input(inputs, "gt_dir")?)));
        Some(dirs.and_then(|(p, g)| Ok(metric_list(label_dirs::score_label_dirs(p, g)?))))
    }

    fn visualize(
        &self,
        _cfg: &ParsingSettings,
        image: &Path,
        prediction: &Record,
        out: &Path,
    ) -> Option<Result<()>> {
        Some(draw_prediction(image, prediction, out))
    }

    /// The parts found, largest first, as shares of the image.
    fn describe(&self, _cfg: &ParsingSettings, prediction: &Record) -> Result<String> {
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

/// The mean of the class scores for an image and, mirrored back with left and right classes
/// swapped, for its mirror image.
fn merge_mirrored(prediction: &Record, mirrored: &Record) -> Result<Record> {
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
}

/// A row per image: its confusion matrix (truth × prediction pixel counts), grouped by the image.
fn image_rows(predictions: &[Record], targets: &[Record]) -> Result<Vec<SampleStats>> {
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
}

/// The predicted classes at the image's own size, over the image.
fn draw_prediction(image: &Path, prediction: &Record, out: &Path) -> Result<()> {
    let (w, h) = match clasp_sdk::draw::image::image_dimensions(image) {
        Ok(d) => d,
        Err(e) => fail!("reading {}: {e}", image.display()),
    };
    let (shape, s) = scores(prediction)?;
    let labels = upsampled_argmax(s, shape, [h as usize, w as usize]);
    overlay::draw_overlay(image, &labels, out)
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
            shape: vec![h as u64, w as u64].into(),
            label_map: Some("x.png".into()).into(),
            ..Default::default()
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
            shape: vec![c as u64, h as u64, w as u64].into(),
            ..Default::default()
        }
    }

    #[test]
    fn sample_rows_give_back_the_metrics() {
        let (task, cfg) = (ParsingTask, ParsingSettings::default());
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
        let (task, cfg) = (ParsingTask, ParsingSettings::default());
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
