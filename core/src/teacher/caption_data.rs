//! Image–caption pairs for training a teacher: `captions.jsonl` as `clasp synth` writes it (one
//! line per image: `image` relative to the dataset root, `pid`, `captions`), split by identity —
//! Market's training identities (and the empty backdrops, pid 0) train, the test identities are
//! held out for zero-shot retrieval — and decoded once into normalised pixels.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::preprocess::ClipPreprocess;
use crate::data::formats::market1501::TRAIN_DIR;

#[derive(Debug, Clone, Deserialize)]
pub struct CaptionedImage {
    pub image: String,
    pub pid: u32,
    pub captions: Vec<String>,
}

impl CaptionedImage {
    /// Market's training split (or an empty backdrop), as opposed to held-out identities.
    pub fn is_train(&self) -> bool {
        self.pid == 0 || self.image.contains(TRAIN_DIR)
    }
}

/// Reads `captions.jsonl` under `root`; a bad line is named by its number.
pub fn read_captions(root: &Path) -> Result<Vec<CaptionedImage>> {
    let path = root.join("captions.jsonl");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (write a synthetic set with `clasp synth --out {}`)",
            path.display(),
            root.display()
        )
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let rec: CaptionedImage = serde_json::from_str(line)
            .with_context(|| format!("{} line {}", path.display(), i + 1))?;
        if rec.captions.is_empty() {
            bail!("{} line {}: no captions", path.display(), i + 1);
        }
        out.push(rec);
    }
    if out.is_empty() {
        bail!("{} has no captioned images", path.display());
    }
    Ok(out)
}

/// Decoded pairs: CHW pixels per image (same size) with their captions.
pub struct CaptionSet {
    pub items: Vec<CaptionedImage>,
    pub pixels: Vec<Vec<f32>>,
    /// Files that could not be decoded (skipped).
    pub skipped: Vec<PathBuf>,
}

/// Decodes every record's image at `size` over `threads` threads; unreadable images are skipped,
/// named in the log and counted.
pub fn decode_set(
    root: &Path,
    records: Vec<CaptionedImage>,
    prep: &ClipPreprocess,
    size: [usize; 2],
    threads: usize,
) -> CaptionSet {
    let chunk = records.len().div_ceil(threads.max(1)).max(1);
    let decoded: Vec<Option<Vec<f32>>> = std::thread::scope(|s| {
        let handles: Vec<_> = records
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|r| {
                            let path = root.join(&r.image);
                            match crate::data::images::open_image(&path) {
                                Ok(img) => Some(prep.person_pixels(&img.to_rgb8(), size)),
                                Err(e) => {
                                    tracing::warn!("skipping an image: {e:#}");
                                    None
                                }
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("decoder thread"))
            .collect()
    });
    let mut set = CaptionSet {
        items: Vec::new(),
        pixels: Vec::new(),
        skipped: Vec::new(),
    };
    for (rec, px) in records.into_iter().zip(decoded) {
        match px {
            Some(px) => {
                set.items.push(rec);
                set.pixels.push(px);
            }
            None => set.skipped.push(root.join(&rec.image)),
        }
    }
    set
}
