//! The checkpoints of a run: `step_00000100/` directories, newest found by step, last K kept.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::atomic::TMP_PREFIX;
use super::manifest::MANIFEST_FILE;

/// A checkpointer's record of a checkpoint: the loop's progress and the settings it ran under.
pub const PROGRESS_FILE: &str = "progress.json";

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
        let committed = [MANIFEST_FILE, PROGRESS_FILE]
            .iter()
            .any(|f| entry.path().join(f).exists());
        if name.starts_with(TMP_PREFIX) || !committed {
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
