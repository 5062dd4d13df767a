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
    ensure_paired, export_task, fail, FeatureMaps, Host, Init, Record, Result, Spec, Task,
    TaskConfig, Tensor, UpsampleHead,
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
                entry("test_split", "\"val\"", "LIP split evaluated on"),
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
            let (shape, s) = scores(p)?;
            let (lh, lw, labels) = label_map(t)?;
            let predicted = upsampled_argmax(s, shape, [lh, lw]);
            let truth: Vec<u8> = labels.iter().map(|v| *v as u8).collect();
            confusion
                .add(&truth, &predicted)
                .map_err(|e| clasp_sdk::Error(format!("{}: {}", t.image, e.0)))?;
        }
        Ok(metric_list(confusion.metrics()))
    }

    fn dataset(&self, cfg: &TaskConfig, root: &Path, split: &str) -> Result<Vec<Record>> {
        let split = match split {
            "train" => cfg.str("train_split")?,
            "test" | "val" => cfg.str("test_split")?,
            other => fail!("unknown split `{other}` (train, test)"),
        };
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
