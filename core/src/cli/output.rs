//! Results a command writes where the user says (`--out`): an existing file or folder there is a
//! result of its own, replaced only with `--overwrite`.

use std::path::Path;

use anyhow::{bail, Result};

/// Fails when `out` exists and `overwrite` is off, naming the path and the flag.
pub fn refuse_existing(out: &Path, overwrite: bool) -> Result<()> {
    if overwrite || std::fs::symlink_metadata(out).is_err() {
        return Ok(());
    }
    let kind = if out.is_dir() { "folder" } else { "file" };
    bail!(
        "{} already exists (a {kind}): pass --overwrite to replace it, or choose another --out",
        out.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_output_is_refused_unless_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new");
        assert!(refuse_existing(&new, false).is_ok());
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let msg = refuse_existing(&file, false).unwrap_err().to_string();
        assert!(
            msg.contains("f already exists (a file)") && msg.contains("--overwrite"),
            "{msg}"
        );
        assert!(refuse_existing(dir.path(), false).is_err());
        assert!(refuse_existing(&file, true).is_ok());
    }
}
