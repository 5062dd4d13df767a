//! `manifest.json`: what a checkpoint holds, enough to rebuild the model without the config.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::model::VitConfig;

pub const MANIFEST_FILE: &str = "manifest.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// Bumped when the layout of a checkpoint changes incompatibly.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    /// `backbone` (pre-training, init) or `task` (fine-tuned).
    pub kind: String,
    pub crate_version: String,
    pub arch: String,
    pub preset: String,
    pub model: VitConfig,
    /// Input size [H, W] the model was trained at.
    pub img_size: [usize; 2],
    /// Tasks with a prompt in this checkpoint.
    pub tasks: Vec<String>,
    /// Optimiser steps taken.
    pub step: u64,
    /// sha256 of the resolved config TOML of the run that wrote it.
    pub config_hash: String,
    pub created_unix: u64,
    /// For task checkpoints: the plugin that owns the head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginRef>,
    /// For task checkpoints: which epoch of the fine-tuning this is, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<Selection>,
}

/// How a fine-tuning run chose the epoch it delivers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// 1-based.
    pub epoch: usize,
    /// The validation metric that chose it and its value; `None` when the dataset has no
    /// validation split (or no epoch scored a number on it) and the last epoch is delivered.
    pub validation: Option<(String, f64)>,
}

/// Which plugin a task checkpoint needs, and the task settings it was trained with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginRef {
    pub name: String,
    pub version: String,
    pub sha256: String,
    /// The resolved task configuration (JSON object).
    pub config: String,
}

impl Manifest {
    pub fn new_backbone(
        preset: &str,
        model: &VitConfig,
        tasks: Vec<String>,
        step: u64,
        config_hash: String,
    ) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            kind: "backbone".into(),
            crate_version: env!("CARGO_PKG_VERSION").into(),
            arch: "vit".into(),
            preset: preset.into(),
            model: model.clone(),
            img_size: model.img_size,
            tasks,
            step,
            config_hash,
            created_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            plugin: None,
            selection: None,
        }
    }

    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let m: Manifest =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if m.format_version != FORMAT_VERSION {
            bail!(
                "{}: checkpoint format {} but this build reads format {FORMAT_VERSION}",
                path.display(),
                m.format_version
            );
        }
        Ok(m)
    }
}
