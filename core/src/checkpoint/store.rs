//! The checkpoints of a run: `step_00000100/` directories, newest found by step, last K kept.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::atomic::TMP_PREFIX;
use super::manifest::MANIFEST_FILE;

pub fn step_dir_name(step: u64) -> String {
    format!("step_{step:08}")
}

/// Committed checkpoints under `dir`, oldest first. Staging and partial directories are skipped.
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    if !dir.exists() {
        return Ok(vec![]);
    }
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with(TMP_PREFIX) || !entry.path().join(MANIFEST_FILE).exists() {
            continue;
        }
        if let Some(step) = name
            .strip_prefix("step_")
            .and_then(|s| s.parse::<u64>().ok())
        {
            out.push((step, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

pub fn latest(dir: &Path) -> Result<Option<PathBuf>> {
    Ok(list(dir)?.pop().map(|(_, p)| p))
}

/// Deletes all but the newest `keep` checkpoints.
pub fn prune(dir: &Path, keep: usize) -> Result<Vec<PathBuf>> {
    let all = list(dir)?;
    let n = all.len().saturating_sub(keep);
    let mut removed = Vec::new();
    for (_, path) in all.into_iter().take(n) {
        fs::remove_dir_all(&path).with_context(|| format!("removing {}", path.display()))?;
        removed.push(path);
    }
    Ok(removed)
}

/// Saves `step_XXXXXXXX/` under `dir` atomically, then keeps only the newest `keep_last`.
pub fn save_step(
    dir: &Path,
    step: u64,
    keep_last: usize,
    save: impl FnOnce(&Path) -> Result<PathBuf>,
) -> Result<PathBuf> {
    let path = save(&dir.join(step_dir_name(step)))?;
    for old in prune(dir, keep_last)? {
        tracing::debug!("removed old checkpoint {}", old.display());
    }
    Ok(path)
}
