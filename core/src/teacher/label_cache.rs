//! The pseudo-label cache on disk: `index.json` (teacher fingerprint, vocabulary, shard size,
//! every image with its content hash) and one safetensors file per shard of `shard_size`
//! consecutive images (`parts` u8 `[n, gh, gw]`, `confidence` f32 `[n, gh, gw]`, `attributes`
//! f32 `[n, A]`, `valid` u8 `[n]` — 0 where the image could not be decoded). Every file is
//! written under a temporary name and renamed, so a killed run leaves whole shards or none.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::labeller::{BatchLabels, Vocabulary};
use crate::file_hash::sha256_file;

pub const INDEX: &str = "index.json";
const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexedImage {
    /// Relative to the images root.
    pub path: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheIndex {
    pub format: u32,
    pub teacher_fingerprint: String,
    /// Where the teacher was (informational: a moved teacher with the same files is the same).
    pub teacher_dir: String,
    pub vocabulary: Vocabulary,
    pub shard_size: usize,
    pub images: Vec<IndexedImage>,
}

impl CacheIndex {
    pub fn new(
        teacher_fingerprint: String,
        teacher_dir: &Path,
        vocabulary: Vocabulary,
        shard_size: usize,
        images: Vec<IndexedImage>,
    ) -> Self {
        Self {
            format: FORMAT,
            teacher_fingerprint,
            teacher_dir: teacher_dir.display().to_string(),
            vocabulary,
            shard_size,
            images,
        }
    }

    pub fn num_shards(&self) -> usize {
        self.images.len().div_ceil(self.shard_size)
    }

    /// Image indices of shard `c`.
    pub fn shard_range(&self, c: usize) -> std::ops::Range<usize> {
        let start = c * self.shard_size;
        start..(start + self.shard_size).min(self.images.len())
    }

    /// Why `self` (what this run would write) cannot continue the cache `existing`, if it cannot.
    fn conflict_with(&self, existing: &CacheIndex) -> Option<String> {
        if existing.teacher_fingerprint != self.teacher_fingerprint {
            return Some(format!(
                "it was labelled by another teacher (fingerprint {}…, from {}; this one is {}…, \
                 from {}): two teachers are never mixed in one cache",
                &existing.teacher_fingerprint[..12],
                existing.teacher_dir,
                &self.teacher_fingerprint[..12],
                self.teacher_dir
            ));
        }
        if existing.vocabulary != self.vocabulary {
            return Some(
                "it was labelled with another vocabulary or label settings (`[label]`: parts, \
                 templates, attributes, temperatures, input size)"
                    .into(),
            );
        }
        if existing.shard_size != self.shard_size {
            return Some(format!(
                "its shards hold {} images, `label.shard_size` is {}",
                existing.shard_size, self.shard_size
            ));
        }
        if existing.images.len() != self.images.len() {
            return Some(format!(
                "it lists {} images, the folder now has {}",
                existing.images.len(),
                self.images.len()
            ));
        }
        existing
            .images
            .iter()
            .zip(&self.images)
            .find(|(a, b)| a != b)
            .map(|(a, b)| {
                if a.path != b.path {
                    format!(
                        "image list differs at {} (cache) vs {} (now)",
                        a.path, b.path
                    )
                } else {
                    format!(
                        "{} changed since it was labelled (content hash differs)",
                        a.path
                    )
                }
            })
    }
}

pub fn shard_path(cache: &Path, shard: usize) -> PathBuf {
    cache.join(format!("shard-{shard:05}.safetensors"))
}

/// The sha256 of shard `shard`, written after the shard itself: a shard without it, or whose
/// bytes no longer match it, is not whole. (Beside each shard rather than in the index: the
/// workers of a sharded run write their shards concurrently and never rewrite the index.)
fn checksum_path(cache: &Path, shard: usize) -> PathBuf {
    cache.join(format!("shard-{shard:05}.safetensors.sha256"))
}

/// Writes `path` through a staging folder `.tmp-<name>-<pid>/` beside it, so that whatever a
/// killed writer leaves (the safetensors crate's own temporary included) carries this process's
/// id and is cleared by the next job.
fn write_atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let name = path.file_name().context("no file name")?.to_string_lossy();
    let staging = path.with_file_name(format!(".tmp-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&staging).with_context(|| format!("creating {}", staging.display()))?;
    let tmp = staging.join(name.as_ref());
    write(&tmp)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))?;
    std::fs::remove_dir_all(&staging).with_context(|| format!("removing {}", staging.display()))
}

/// The cache's index: `wanted` is written when the cache is new; an existing index must agree
/// with it, or the cache is refused with the reason.
pub fn open_index(cache: &Path, wanted: &CacheIndex) -> Result<()> {
    std::fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    // Shards a killed job was writing (other live jobs of a sharded run keep theirs).
    crate::checkpoint::atomic::remove_stale_temporaries(cache)?;
    let path = cache.join(INDEX);
    if path.is_file() {
        return check_index(cache, wanted);
    }
    let json = serde_json::to_string_pretty(wanted)?;
    write_atomically(&path, |tmp| Ok(std::fs::write(tmp, &json)?))
}

/// Refuses the cache at `cache` when its index (which must exist) disagrees with `wanted`;
/// touches nothing.
pub fn check_index(cache: &Path, wanted: &CacheIndex) -> Result<()> {
    let existing = read_index(cache)?;
    match wanted.conflict_with(&existing) {
        Some(why) => bail!(
            "refusing to continue the label cache {}: {why}. Label into another --out.",
            cache.display()
        ),
        None => Ok(()),
    }
}

pub fn read_index(cache: &Path) -> Result<CacheIndex> {
    let path = cache.join(INDEX);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Writes shard `c` of `n` images (labels image-major; `valid[i]` false for undecodable ones).
pub fn write_shard(
    cache: &Path,
    c: usize,
    index: &CacheIndex,
    labels: &BatchLabels,
    valid: &[bool],
) -> Result<()> {
    let n = valid.len();
    let [gh, gw] = index.vocabulary.grid;
    let a = index.vocabulary.attribute_names.len();
    let cpu = &Device::Cpu;
    let tensors: HashMap<String, Tensor> = [
        (
            "parts",
            Tensor::from_vec(labels.parts.clone(), (n, gh, gw), cpu)?,
        ),
        (
            "confidence",
            Tensor::from_vec(labels.confidence.clone(), (n, gh, gw), cpu)?,
        ),
        (
            "attributes",
            Tensor::from_vec(labels.attributes.clone(), (n, a), cpu)?,
        ),
        (
            "valid",
            Tensor::from_vec(valid.iter().map(|v| *v as u8).collect(), n, cpu)?,
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let path = shard_path(cache, c);
    write_atomically(&path, |tmp| {
        crate::checkpoint::tensor_file::save_tensors(&tensors, tmp)
    })?;
    let sha = sha256_file(&path)?;
    write_atomically(&checksum_path(cache, c), |tmp| {
        Ok(std::fs::write(tmp, format!("{sha}\n"))?)
    })
}

/// Why shard `c` is not whole — missing, unreadable (cut off), or holding another count of
/// images than the index gives it — or `None` when it is.
pub fn shard_problem(cache: &Path, c: usize, index: &CacheIndex) -> Option<String> {
    let path = shard_path(cache, c);
    if !path.is_file() {
        return Some(format!("{} is missing", path.display()));
    }
    let recorded = std::fs::read_to_string(checksum_path(cache, c)).ok();
    match (recorded, sha256_file(&path)) {
        (None, _) => {
            return Some(format!(
                "{} has no checksum beside it (its writer was stopped)",
                path.display()
            ))
        }
        (_, Err(e)) => return Some(format!("{e:#}")),
        (Some(want), Ok(got)) if want.trim() != got => {
            return Some(format!(
                "{} does not match its checksum (damaged since it was written)",
                path.display()
            ))
        }
        _ => {}
    }
    let want = index.shard_range(c).len();
    let [gh, gw] = index.vocabulary.grid;
    let a = index.vocabulary.attribute_names.len();
    let t = match candle_core::safetensors::load(&path, &Device::Cpu) {
        Ok(t) => t,
        Err(e) => return Some(format!("{} is unreadable ({e})", path.display())),
    };
    for (key, shape) in [
        ("parts", vec![want, gh, gw]),
        ("confidence", vec![want, gh, gw]),
        ("attributes", vec![want, a]),
        ("valid", vec![want]),
    ] {
        match t.get(key) {
            Some(x) if x.dims() == shape.as_slice() => {}
            Some(x) => {
                return Some(format!(
                    "{}: `{key}` has shape {:?}, the index gives it {shape:?}",
                    path.display(),
                    x.dims()
                ))
            }
            None => return Some(format!("{} has no `{key}`", path.display())),
        }
    }
    None
}

/// A whole cache in memory.
#[derive(Debug, Clone)]
pub struct CacheContents {
    pub index: CacheIndex,
    pub parts: Vec<u8>,
    pub confidence: Vec<f32>,
    pub attributes: Vec<f32>,
    pub valid: Vec<bool>,
}

/// Reads every shard; a missing shard is an error naming it.
pub fn read_cache(cache: &Path) -> Result<CacheContents> {
    let index = read_index(cache)?;
    let mut out = CacheContents {
        index: index.clone(),
        parts: Vec::new(),
        confidence: Vec::new(),
        attributes: Vec::new(),
        valid: Vec::new(),
    };
    for c in 0..index.num_shards() {
        let path = shard_path(cache, c);
        if let Some(problem) = shard_problem(cache, c, &index) {
            bail!(
                "{problem}: the cache is incomplete (rerun `clasp label` with the same \
                 arguments, or the other `--shard` workers, to write it again)"
            );
        }
        let t = candle_core::safetensors::load(&path, &Device::Cpu)
            .with_context(|| format!("reading {}", path.display()))?;
        let get = |k: &str| {
            t.get(k)
                .with_context(|| format!("{} has no `{k}`", path.display()))
        };
        out.parts
            .extend(get("parts")?.flatten_all()?.to_vec1::<u8>()?);
        out.confidence
            .extend(get("confidence")?.flatten_all()?.to_vec1::<f32>()?);
        out.attributes
            .extend(get("attributes")?.flatten_all()?.to_vec1::<f32>()?);
        out.valid
            .extend(get("valid")?.to_vec1::<u8>()?.into_iter().map(|v| v != 0));
    }
    Ok(out)
}
