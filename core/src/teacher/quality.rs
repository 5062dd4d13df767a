//! `clasp teacher eval`: how good the pseudo-labels are where the truth is known. On a synthetic
//! set's held-out split, part labels per patch are scored against the LIP maps folded into the
//! six default parts (mIoU), beside a trivial baseline that cuts every image into fixed rows by
//! height (head / upper body / lower body / feet); attribute probabilities are scored against
//! the PA-100K table (mA, threshold ½). A picture shows pseudo-labels beside the truth.

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use image::{Rgb, RgbImage};
use serde::Serialize;

use super::labeller::Labeller;
use crate::data::formats::{lip as lip_format, pa100k};
use crate::data::synth::lip;

/// The default part vocabulary, in `label.parts` order.
pub const PARTS: [&str; 6] = [
    "background",
    "head",
    "upper body",
    "arms",
    "lower body",
    "feet",
];

/// LIP class → default part.
pub fn lip_to_part(class: u8) -> u8 {
    match class {
        lip::HAT | lip::HAIR | lip::SUNGLASSES | lip::FACE => 1,
        lip::UPPER_CLOTHES | lip::DRESS | lip::COAT | lip::SCARF | lip::JUMPSUITS => 2,
        lip::GLOVE | lip::LEFT_ARM | lip::RIGHT_ARM => 3,
        lip::PANTS | lip::SKIRT | lip::SOCKS | lip::LEFT_LEG | lip::RIGHT_LEG => 4,
        lip::LEFT_SHOE | lip::RIGHT_SHOE => 5,
        _ => 0,
    }
}

/// The row baseline's part for patch row `r` of `rows`: head above 19 % of the height, upper
/// body to 49 %, lower body to 88 %, feet below — where those parts lie, row by row, in the
/// synthetic label maps (a standing person filling the crop's height).
pub fn row_part(r: usize, rows: usize) -> u8 {
    let y = (r as f64 + 0.5) / rows as f64;
    match y {
        y if y < 0.19 => 1,
        y if y < 0.49 => 2,
        y if y < 0.88 => 4,
        _ => 5,
    }
}

/// The majority part of each patch of a LIP label map `[h, w]` resized (nearest) to `size`.
fn patch_truth(labels: &[u8], lw: usize, lh: usize, size: [usize; 2], grid: [usize; 2]) -> Vec<u8> {
    let [h, w] = size;
    let (ph, pw) = (h / grid[0], w / grid[1]);
    let mut out = Vec::with_capacity(grid[0] * grid[1]);
    for gy in 0..grid[0] {
        for gx in 0..grid[1] {
            let mut votes = [0usize; PARTS.len()];
            for y in gy * ph..(gy + 1) * ph {
                for x in gx * pw..(gx + 1) * pw {
                    let sy = ((y as f64 + 0.5) * lh as f64 / h as f64) as usize;
                    let sx = ((x as f64 + 0.5) * lw as f64 / w as f64) as usize;
                    votes[lip_to_part(labels[sy.min(lh - 1) * lw + sx.min(lw - 1)]) as usize] += 1;
                }
            }
            let best = (0..votes.len()).max_by_key(|k| (votes[*k], usize::MAX - k));
            out.push(best.unwrap_or(0) as u8);
        }
    }
    out
}

/// Per-class IoU from a confusion matrix `[truth][predicted]`.
fn ious(confusion: &[[u64; 6]; 6]) -> Vec<f64> {
    (0..6)
        .map(|k| {
            let tp = confusion[k][k] as f64;
            let fn_: f64 = (0..6)
                .filter(|j| *j != k)
                .map(|j| confusion[k][j] as f64)
                .sum();
            let fp: f64 = (0..6)
                .filter(|i| *i != k)
                .map(|i| confusion[i][k] as f64)
                .sum();
            if tp + fn_ + fp == 0.0 {
                0.0
            } else {
                tp / (tp + fn_ + fp)
            }
        })
        .collect()
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct QualityReport {
    pub images: usize,
    pub part_iou: Vec<(String, f64)>,
    pub part_miou: f64,
    pub row_baseline_iou: Vec<(String, f64)>,
    pub row_baseline_miou: f64,
    /// Mean confidence of the part labels.
    pub part_confidence: f64,
    pub attribute_accuracy: Vec<(String, f64)>,
    pub attribute_ma: f64,
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Scores the labeller on the held-out people of the synthetic set at `root` (the LIP `val` and
/// `test` splits with the attribute tables of the same people), up to `limit` images; draws the
/// first 12 into `picture` when given.
pub fn evaluate_pseudo_labels(
    labeller: &Labeller,
    root: &Path,
    limit: usize,
    batch: usize,
    picture: Option<&Path>,
) -> Result<QualityReport> {
    let v = &labeller.vocabulary;
    if v.part_names != PARTS {
        bail!(
            "teacher eval folds LIP's classes into the default six parts ({}); `label.parts` names {}",
            PARTS.join(", "),
            v.part_names.join(", ")
        );
    }
    let mut items = Vec::new();
    let mut truth_attrs: std::collections::HashMap<String, [u8; 26]> = Default::default();
    for split in ["val", "test"] {
        items.extend(lip_format::read_split(&root.join("parsing"), split)?);
        let table = root.join(format!("attributes/{split}.csv"));
        truth_attrs.extend(
            pa100k::read(&table)?
                .into_iter()
                .map(|r| (r.image, r.labels)),
        );
    }
    let attr_cols: Vec<Option<usize>> = v
        .attribute_names
        .iter()
        .map(|a| pa100k::ATTRIBUTES.iter().position(|n| n == a))
        .collect();
    let [h, w] = v.img_size;
    let grid = v.grid;
    let cells = grid[0] * grid[1];
    let mut conf = [[0u64; 6]; 6];
    let mut rows_conf = [[0u64; 6]; 6];
    // Per attribute: [tp, fn, tn, fp].
    let mut counts = vec![[0u64; 4]; v.attribute_names.len()];
    let (mut conf_sum, mut n) = (0.0, 0usize);
    let mut drawn: Vec<(RgbImage, Vec<u8>, Vec<u8>)> = Vec::new();
    for chunk in items
        .iter()
        .take(limit)
        .collect::<Vec<_>>()
        .chunks(batch.max(1))
    {
        let mut pixels = Vec::new();
        let mut shown = Vec::new();
        for item in chunk {
            let img = crate::data::images::open_image(&item.image)?.to_rgb8();
            pixels.extend(labeller.pixels(&img));
            shown.push(image::imageops::resize(
                &img,
                w as u32,
                h as u32,
                image::imageops::FilterType::Triangle,
            ));
        }
        let x = Tensor::from_vec(pixels, (chunk.len(), 3, h, w), labeller.clip.store.device())?;
        let labels = labeller.label(&x)?;
        for (b, item) in chunk.iter().enumerate() {
            let (lw, lh, map) = lip_format::read_labels(&item.labels)?;
            let truth = patch_truth(&map, lw as usize, lh as usize, [h, w], grid);
            let pred = &labels.parts[b * cells..(b + 1) * cells];
            for (i, (t, p)) in truth.iter().zip(pred).enumerate() {
                conf[*t as usize][(*p as usize).min(5)] += 1;
                rows_conf[*t as usize][row_part(i / grid[1], grid[0]) as usize] += 1;
            }
            conf_sum += labels.confidence[b * cells..(b + 1) * cells]
                .iter()
                .map(|c| *c as f64)
                .sum::<f64>();
            let name = item.image.file_name().unwrap_or_default().to_string_lossy();
            if let Some(t) = truth_attrs.get(name.as_ref()) {
                let a = v.attribute_names.len();
                for (k, col) in attr_cols.iter().enumerate() {
                    let Some(col) = col else { continue };
                    let p = labels.attributes[b * a + k] > 0.5;
                    let slot = match (t[*col] == 1, p) {
                        (true, true) => 0,
                        (true, false) => 1,
                        (false, false) => 2,
                        (false, true) => 3,
                    };
                    counts[k][slot] += 1;
                }
            }
            if drawn.len() < 12 {
                drawn.push((shown[b].clone(), pred.to_vec(), truth));
            }
            n += 1;
        }
    }
    if n == 0 {
        bail!(
            "{}: the LIP val and test splits have no images",
            root.display()
        );
    }
    let part = ious(&conf);
    let rows = ious(&rows_conf);
    let named = |v: &[f64]| -> Vec<(String, f64)> {
        PARTS
            .iter()
            .map(|p| p.to_string())
            .zip(v.iter().copied())
            .collect()
    };
    let mut attribute_accuracy = Vec::new();
    for (k, c) in counts.iter().enumerate() {
        if attr_cols[k].is_none() {
            continue;
        }
        let [tp, fn_, tn, fp] = c.map(|x| x as f64);
        // PA-100K's mA: mean of the positive and negative recall (a class absent from the
        // split counts its missing half as 0, as the usual implementations do not guard it).
        let pos = if tp + fn_ > 0.0 { tp / (tp + fn_) } else { 0.0 };
        let neg = if tn + fp > 0.0 { tn / (tn + fp) } else { 0.0 };
        attribute_accuracy.push((v.attribute_names[k].clone(), (pos + neg) / 2.0));
    }
    if let Some(path) = picture {
        draw(path, &drawn, [h, w], grid)?;
    }
    Ok(QualityReport {
        images: n,
        part_miou: mean(&part),
        part_iou: named(&part),
        row_baseline_miou: mean(&rows),
        row_baseline_iou: named(&rows),
        part_confidence: conf_sum / (n * cells) as f64,
        attribute_ma: mean(
            &attribute_accuracy
                .iter()
                .map(|(_, a)| *a)
                .collect::<Vec<_>>(),
        ),
        attribute_accuracy,
    })
}

const PART_COLOURS: [[u8; 3]; 6] = [
    [40, 40, 40],
    [230, 60, 60],
    [250, 160, 40],
    [80, 200, 230],
    [60, 90, 220],
    [240, 230, 60],
];

/// Rows of image | pseudo-labels over it | truth over it.
fn draw(
    path: &Path,
    drawn: &[(RgbImage, Vec<u8>, Vec<u8>)],
    size: [usize; 2],
    grid: [usize; 2],
) -> Result<()> {
    let [h, w] = size;
    let (ph, pw) = (h / grid[0], w / grid[1]);
    let per_row = 4;
    let rows = drawn.len().div_ceil(per_row);
    let mut canvas = RgbImage::from_pixel(
        (per_row * 3 * w + (per_row - 1) * 8) as u32,
        (rows * (h + 8)) as u32,
        Rgb([255, 255, 255]),
    );
    for (i, (img, pred, truth)) in drawn.iter().enumerate() {
        let ox = (i % per_row) * (3 * w + 8);
        let oy = (i / per_row) * (h + 8);
        for (panel, labels) in [None, Some(pred), Some(truth)].into_iter().enumerate() {
            for y in 0..h {
                for x in 0..w {
                    let mut p = img.get_pixel(x as u32, y as u32).0;
                    if let Some(l) = labels {
                        let c = PART_COLOURS[(l[(y / ph) * grid[1] + x / pw] as usize).min(5)];
                        for k in 0..3 {
                            p[k] = ((p[k] as u16 + 2 * c[k] as u16) / 3) as u8;
                        }
                    }
                    canvas.put_pixel((ox + panel * w + x) as u32, (oy + y) as u32, Rgb(p));
                }
            }
        }
    }
    canvas
        .save(path)
        .with_context(|| format!("writing {}", path.display()))
}
