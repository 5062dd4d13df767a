//! `runs/<name>/`: the directory every job writes (resolved config, checkpoints, metrics, plots).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::config::{to_toml, Config};

pub const RESOLVED_CONFIG: &str = "config.resolved.toml";

pub struct RunDir {
    pub path: PathBuf,
    /// sha256 of the resolved config TOML.
    pub config_hash: String,
}

impl RunDir {
    /// Creates `run.dir/run.name/` and writes the resolved config into it.
    pub fn create(config: &Config) -> Result<Self> {
        let path = Path::new(&config.run.dir).join(&config.run.name);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        let text = to_toml(config)?;
        let file = path.join(RESOLVED_CONFIG);
        std::fs::write(&file, &text).with_context(|| format!("writing {}", file.display()))?;
        Ok(Self {
            path,
            config_hash: config_hash(&text),
        })
    }

    pub fn checkpoints(&self) -> PathBuf {
        self.path.join("checkpoints")
    }
}

pub fn config_hash(toml_text: &str) -> String {
    format!("{:x}", Sha256::digest(toml_text.as_bytes()))
}
