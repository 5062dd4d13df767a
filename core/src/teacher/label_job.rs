//! `clasp label`: pseudo-labels for every image under a folder, written shard by shard into a
//! cache that a killed run continues (finished shards are kept, the rest are labelled) and that
//! several machines fill together (`--shard i/n` takes shards i, i + n, …).

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};

use super::label_cache::{
    check_index, open_index, shard_path, shard_problem, write_shard, CacheIndex, IndexedImage,
};
use super::labeller::{teacher_fingerprint, BatchLabels, Labeller};
use crate::config::teacher::LabelSettings;
use crate::data::images::list_images_recursive;
use crate::file_hash::sha256_file;

/// Which shards this worker writes: `index` of `count` (`--shard i/n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSelection {
    pub index: usize,
    pub count: usize,
}

impl ShardSelection {
    pub const ALL: Self = Self { index: 0, count: 1 };

    /// `"i/n"` with 0 ≤ i < n.
    pub fn parse(s: &str) -> Result<Self> {
        let parsed = s
            .split_once('/')
            .and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
        match parsed {
            Some((index, count)) if count > 0 && index < count => Ok(Self { index, count }),
            _ => bail!("--shard {s:?}: expected i/n with 0 ≤ i < n, e.g. 0/4"),
        }
    }
}

pub struct LabelRequest<'a> {
    pub teacher: &'a Path,
    pub images: &'a Path,
    pub out: &'a Path,
    pub shards: ShardSelection,
    /// Stop after writing this many shards (time-boxed jobs; the next run continues).
    pub max_new_shards: Option<usize>,
    pub settings: &'a LabelSettings,
    pub device: &'a Device,
}

#[derive(Debug, Clone)]
pub struct LabelSummary {
    pub images: usize,
    pub total_shards: usize,
    pub written: usize,
    /// Images in the shards this run wrote.
    pub labelled: usize,
    pub already_done: usize,
    /// Images that could not be decoded (marked invalid in their shard).
    pub unreadable: Vec<String>,
    pub images_per_second: f64,
    /// Every shard of the cache exists (this worker's and the others').
    pub complete: bool,
    pub unknown_words: Vec<String>,
}

pub fn run_label(req: &LabelRequest) -> Result<LabelSummary> {
    let labeller = Labeller::new(req.teacher, req.settings, req.device)?;
    let files = list_images_recursive(req.images)?;
    if files.is_empty() {
        bail!("no images under {}", req.images.display());
    }
    let images = files
        .iter()
        .map(|f| {
            Ok(IndexedImage {
                path: f
                    .strip_prefix(req.images)
                    .unwrap_or(f)
                    .display()
                    .to_string(),
                sha256: sha256_file(f)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let index = CacheIndex::new(
        teacher_fingerprint(req.teacher)?,
        req.teacher,
        labeller.vocabulary.clone(),
        req.settings.shard_size,
        images,
    );
    // The workers of one mpirun job: rank 0 opens the index (clearing a killed job's
    // temporaries; a failure there aborts the job), the others only check theirs against it —
    // clearing again could remove what a rank on another machine is writing.
    let world = crate::distributed::world();
    if world.is_main() {
        open_index(req.out, &index)?;
    }
    world.barrier()?;
    if !world.is_main() {
        check_index(req.out, &index)?;
    }

    let mine: Vec<usize> = (0..index.num_shards())
        .filter(|c| c % req.shards.count == req.shards.index)
        .collect();
    let todo: Vec<usize> = mine
        .iter()
        .copied()
        .filter(|c| match shard_problem(req.out, *c, &index) {
            None => false,
            Some(problem) => {
                // A shard that exists but is not whole is written again.
                if shard_path(req.out, *c).exists() {
                    tracing::warn!("{problem}: labelling it again");
                }
                true
            }
        })
        .collect();
    let todo_images: usize = todo.iter().map(|c| index.shard_range(*c).len()).sum();
    let bar = ProgressBar::new(todo_images as u64).with_style(ProgressStyle::with_template(
        "labelling {bar:30} {pos}/{len} images [{elapsed_precise}<{eta_precise}] {per_sec}",
    )?);
    let start = Instant::now();
    let (mut written, mut labelled, mut unreadable) = (0, 0usize, Vec::new());
    let [h, w] = labeller.vocabulary.img_size;
    for &c in &todo {
        if req.max_new_shards.is_some_and(|m| written >= m) {
            break;
        }
        let range = index.shard_range(c);
        let mut valid = Vec::with_capacity(range.len());
        let mut pixels = Vec::new();
        for i in range.clone() {
            match crate::data::images::open_image(&files[i]) {
                Ok(img) => {
                    pixels.push(labeller.pixels(&img.to_rgb8()));
                    valid.push(true);
                }
                Err(e) => {
                    tracing::warn!("skipping an image: {e:#}");
                    unreadable.push(index.images[i].path.clone());
                    valid.push(false);
                }
            }
        }
        let mut decoded = BatchLabels::default();
        for chunk in pixels.chunks(req.settings.batch_size) {
            let x = Tensor::from_vec(chunk.concat(), (chunk.len(), 3, h, w), req.device)?;
            let l = labeller.label(&x)?;
            decoded.parts.extend(l.parts);
            decoded.confidence.extend(l.confidence);
            decoded.attributes.extend(l.attributes);
            bar.inc(chunk.len() as u64);
        }
        write_shard(
            req.out,
            c,
            &index,
            &fill_invalid(decoded, &valid, &index),
            &valid,
        )?;
        written += 1;
        labelled += range.len();
    }
    bar.finish_and_clear();
    world.barrier()?; // every process's shards are written before completeness is judged
    let complete = (0..index.num_shards()).all(|c| shard_problem(req.out, c, &index).is_none());
    Ok(LabelSummary {
        images: index.images.len(),
        total_shards: index.num_shards(),
        written,
        already_done: mine.len() - todo.len(),
        labelled,
        unreadable,
        images_per_second: labelled as f64 / start.elapsed().as_secs_f64().max(1e-9),
        complete,
        unknown_words: labeller.unknown_words,
    })
}

/// Labels of the decoded images spread over the shard's slots, zeros where an image was
/// unreadable.
fn fill_invalid(decoded: BatchLabels, valid: &[bool], index: &CacheIndex) -> BatchLabels {
    let [gh, gw] = index.vocabulary.grid;
    let (p, a) = (gh * gw, index.vocabulary.attribute_names.len());
    let mut out = BatchLabels::default();
    let mut k = 0;
    for v in valid {
        if *v {
            out.parts
                .extend_from_slice(&decoded.parts[k * p..(k + 1) * p]);
            out.confidence
                .extend_from_slice(&decoded.confidence[k * p..(k + 1) * p]);
            out.attributes
                .extend_from_slice(&decoded.attributes[k * a..(k + 1) * a]);
            k += 1;
        } else {
            out.parts.extend(std::iter::repeat_n(0, p));
            out.confidence.extend(std::iter::repeat_n(0.0, p));
            out.attributes.extend(std::iter::repeat_n(0.5, a));
        }
    }
    out
}
