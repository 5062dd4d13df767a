//! Atomic checkpoint directories: everything is written into a hidden temporary sibling, fsynced,
//! then renamed into place. A crash at any point leaves either the old directory or the new one,
//! never a half-written one under the final name.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Prefix of temporary directories; readers skip them.
pub const TMP_PREFIX: &str = ".tmp-";

/// Removes the temporaries in `dir` (`.tmp-<name>-<pid>`) left by processes that no longer run
/// (a killed save); those of live processes stay. Without `/proc` nothing can be told dead, and
/// nothing is removed. Returns how many went.
pub fn remove_stale_temporaries(dir: &Path) -> Result<usize> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(0);
    };
    if !Path::new("/proc/self").exists() {
        return Ok(0);
    }
    let mut removed = 0;
    for entry in entries {
        let path = entry
            .with_context(|| format!("listing {}", dir.display()))?
            .path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let Some(pid) = name
            .strip_prefix(TMP_PREFIX)
            .and_then(|rest| rest.rsplit_once('-'))
            .and_then(|(_, pid)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        }
        .with_context(|| format!("removing the stale temporary {}", path.display()))?;
        removed += 1;
    }
    Ok(removed)
}

fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("fsync {}", dir.display()))
}

/// Writes files into a staging directory; [`AtomicDir::commit`] makes them visible.
pub struct AtomicDir {
    staging: PathBuf,
    target: PathBuf,
    parent: PathBuf,
}

impl AtomicDir {
    pub fn begin(target: &Path) -> Result<Self> {
        // A bare relative name ("ck") has the empty path as parent: that is the current directory.
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
        let name = target
            .file_name()
            .context("checkpoint path has no file name")?
            .to_string_lossy();
        remove_stale_temporaries(&parent)?;
        let staging = parent.join(format!("{TMP_PREFIX}{name}-{}", std::process::id()));
        if staging.exists() {
            fs::remove_dir_all(&staging)?;
        }
        fs::create_dir_all(&staging).with_context(|| format!("creating {}", staging.display()))?;
        Ok(Self {
            staging,
            target: target.to_path_buf(),
            parent,
        })
    }

    /// Where to write a file that will end up as `target/name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.staging.join(name)
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(name);
        let mut f = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        Ok(())
    }

    /// fsyncs a file written through [`AtomicDir::path`] by another writer.
    pub fn sync_file(&self, name: &str) -> Result<()> {
        let path = self.path(name);
        File::open(&path)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("fsync {}", path.display()))
    }

    /// Moves the staged directory to its final name, replacing an older one of the same name.
    pub fn commit(self) -> Result<PathBuf> {
        fsync_dir(&self.staging)?;
        let parent = self.parent.clone();
        if self.target.exists() {
            // rename() cannot replace a non-empty directory: move the old one aside first.
            let old = parent.join(format!(
                "{TMP_PREFIX}old-{}-{}",
                self.target
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy(),
                std::process::id()
            ));
            fs::rename(&self.target, &old).with_context(|| {
                format!(
                    "moving {} aside to {}",
                    self.target.display(),
                    old.display()
                )
            })?;
            fs::rename(&self.staging, &self.target).with_context(|| {
                format!(
                    "moving {} to {}",
                    self.staging.display(),
                    self.target.display()
                )
            })?;
            // What was replaced may have been a file (`--out` named one).
            if old.is_dir() {
                fs::remove_dir_all(&old)
            } else {
                fs::remove_file(&old)
            }
            .with_context(|| format!("removing {}", old.display()))?;
        } else {
            fs::rename(&self.staging, &self.target)?;
        }
        fsync_dir(&parent)?;
        Ok(self.target.clone())
    }
}

impl Drop for AtomicDir {
    fn drop(&mut self) {
        // An abandoned (failed) save removes its staging directory; after commit it is gone.
        let _ = fs::remove_dir_all(&self.staging);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporaries_of_dead_processes_go_and_those_of_live_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        // No process has a pid this large (Linux's pid_max is at most 2^22).
        let dead = dir
            .path()
            .join(format!("{TMP_PREFIX}step_00000020-4000000000"));
        fs::create_dir_all(dead.join("inner")).unwrap();
        let dead_file = dir
            .path()
            .join(format!("{TMP_PREFIX}shard-00001.safetensors-4000000001"));
        fs::write(&dead_file, b"half").unwrap();
        let live = dir
            .path()
            .join(format!("{TMP_PREFIX}step_00000030-{}", std::process::id()));
        fs::create_dir_all(&live).unwrap();
        let kept = dir.path().join("step_00000010");
        fs::create_dir_all(&kept).unwrap();
        assert_eq!(remove_stale_temporaries(dir.path()).unwrap(), 2);
        assert!(!dead.exists() && !dead_file.exists());
        assert!(live.exists() && kept.exists());
    }
}
