//! Results a command writes where the user says (`--out`): an existing file or folder there is a
//! result of its own, refused without `--overwrite` and moved aside (never deleted) with it.

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::run_dir::aside_name;

/// Clears the way for writing `out`: nothing there, or `overwrite` and whatever is there moved to
/// `<out>.replaced-<time>`; otherwise an error naming the path and the flag.
pub fn prepare_output(out: &Path, overwrite: bool) -> Result<()> {
    if std::fs::symlink_metadata(out).is_err() {
        return Ok(());
    }
    let kind = if out.is_dir() { "folder" } else { "file" };
    if !overwrite {
        bail!(
            "{} already exists (a {kind}): pass --overwrite to move it aside and write anew, or \
             choose another --out",
            out.display()
        );
    }
    let aside = aside_name(out);
    std::fs::rename(out, &aside)
        .with_context(|| format!("moving {} aside to {}", out.display(), aside.display()))?;
    eprintln!(
        "--overwrite: {} moved to {}",
        out.display(),
        aside.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_output_is_refused_or_moved_aside_never_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new");
        assert!(prepare_output(&new, false).is_ok());
        let file = dir.path().join("f");
        std::fs::write(&file, "mine").unwrap();
        let msg = prepare_output(&file, false).unwrap_err().to_string();
        assert!(
            msg.contains("f already exists (a file)") && msg.contains("--overwrite"),
            "{msg}"
        );
        prepare_output(&file, true).unwrap();
        assert!(!file.exists());
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains("f.replaced-"))
            .collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(std::fs::read_to_string(&aside[0]).unwrap(), "mine");
    }
}
