//! Atomic checkpoint directories: everything is written into a hidden temporary sibling, fsynced,
//! then renamed into place. A crash at any point leaves either the old directory or the new one,
//! never a half-written one under the final name.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Prefix of temporary directories; readers skip them.
pub const TMP_PREFIX: &str = ".tmp-";

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
            fs::rename(&self.target, &old)?;
            fs::rename(&self.staging, &self.target)?;
            fs::remove_dir_all(&old)?;
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
