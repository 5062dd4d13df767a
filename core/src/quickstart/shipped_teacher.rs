//! The synthetic CLIP teacher that ships inside the `clasp` binary. The paper takes CLIP as
//! given; so does the quickstart: this is a real CLIP in Hugging Face layout, trained here on
//! captioned synthetic people with the committed recipe (`configs/teacher/synthetic.toml`, 30
//! epochs), reproducible by the commands in `core/assets/synthetic-teacher/README.md`. Its files
//! are pinned by their fingerprint: a changed asset refuses to install.

use std::path::Path;

use anyhow::{bail, Result};

use crate::checkpoint::atomic::AtomicDir;
use crate::teacher::labeller::teacher_fingerprint;

macro_rules! asset {
    ($name:literal) => {
        (
            $name,
            include_bytes!(concat!("../../assets/synthetic-teacher/", $name)).as_slice(),
        )
    };
}

/// The teacher's files, as `clasp teacher train` wrote them.
const FILES: [(&str, &[u8]); 6] = [
    asset!("config.json"),
    asset!("model.safetensors"),
    asset!("tokenizer.json"),
    asset!("preprocessor_config.json"),
    asset!("training.json"),
    asset!("train_log.jsonl"),
];

/// [`teacher_fingerprint`] of the shipped teacher (sha256 over its model-defining files).
pub const FINGERPRINT: &str = "e8bb28cb26b1da7edefe2bc8e831452b22ba4a1c09efb6f9d378c15d6e3149f4";

/// Writes the shipped teacher to `out` (atomically) and checks its fingerprint; returns it.
pub fn install(out: &Path) -> Result<String> {
    let dir = AtomicDir::begin(out)?;
    for (name, bytes) in FILES {
        dir.write(name, bytes)?;
    }
    dir.commit()?;
    let fingerprint = teacher_fingerprint(out)?;
    if fingerprint != FINGERPRINT {
        bail!(
            "the shipped teacher written to {} has fingerprint {fingerprint}, not the pinned \
             {FINGERPRINT}: the binary's teacher asset was changed without updating the pin",
            out.display()
        );
    }
    Ok(fingerprint)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// It installs with its pinned fingerprint, and labels with the quickstart's vocabulary (every
    /// prompt in words it was trained on) at the width the quickstart's prompts expect.
    #[test]
    fn the_shipped_teacher_installs_and_reads_the_quickstart_vocabulary() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("teacher");
        assert_eq!(install(&out).unwrap(), FINGERPRINT);
        let path = dir.path().join("recipe.toml");
        std::fs::write(&path, super::super::variants::TEACHER_RECIPE).unwrap();
        let config = crate::config::ConfigSources {
            file: Some(path),
            ..Default::default()
        }
        .load()
        .unwrap();
        let labeller =
            crate::teacher::labeller::Labeller::new(&out, &config.label, &candle_core::Device::Cpu)
                .unwrap();
        assert!(labeller.unknown_words.is_empty());
        assert_eq!(labeller.clip.config.projection_dim, 96);
    }
}
