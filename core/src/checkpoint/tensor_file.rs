//! Writing a safetensors file that other users can read as the user's umask allows. The
//! safetensors crate writes through a private temporary file (mode 0600) and renames it, so
//! weights would stay unreadable to a group that can read the manifest beside them.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use candle_core::Tensor;

/// `candle_core::safetensors::save`, then the mode a newly created file gets (0666 less the
/// umask); every error names the file.
pub fn save_tensors<K: AsRef<str> + Ord + std::fmt::Display>(
    tensors: &HashMap<K, Tensor>,
    path: &Path,
) -> Result<()> {
    candle_core::safetensors::save(tensors, path)
        .with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666 & !umask()))
            .with_context(|| format!("setting the permissions of {}", path.display()))?;
    }
    Ok(())
}

/// The process's umask, as Linux reports it; the common 022 where it cannot be read.
#[cfg(unix)]
fn umask() -> u32 {
    crate::proc_status::field("Umask")
        .and_then(|v| u32::from_str_radix(&v, 8).ok())
        .unwrap_or(0o022)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_saved_file_gets_the_mode_of_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let (weights, plain) = (dir.path().join("w.safetensors"), dir.path().join("plain"));
        let t = Tensor::zeros(2, candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
        save_tensors(&HashMap::from([("t", t)]), &weights).unwrap();
        std::fs::write(&plain, b"x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&weights), mode(&plain));
    }
}
