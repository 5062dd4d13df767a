//! What each quickstart stage leaves beside its run (`done.json`, `result.json`), so a rerun
//! reuses it and the report reads it.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::protocol::Protocol;

/// One pre-training run's outcome (`done.json` beside its run).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PretrainResult {
    pub variant: String,
    /// Which of the variant's seeds (0 is the first).
    pub seed_index: usize,
    pub checkpoint: String,
    pub steps: usize,
    pub loss_ssl: Option<f64>,
    pub loss_part: Option<f64>,
    pub loss_attr: Option<f64>,
    pub teacher_entropy: Option<f64>,
    pub collapse: Option<String>,
    /// PC-MoE's gates at the end: per task, per block, entropy over ln E (1: uniform).
    #[serde(default)]
    pub gate_entropy: std::collections::BTreeMap<String, Vec<f64>>,
    /// Per block, the task–expert mutual information (nats).
    #[serde(default)]
    pub gate_mi: Vec<f64>,
    pub seconds: f64,
}

/// One fine-tuning run's outcome (`result.json` beside its run).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskResult {
    pub variant: String,
    pub task: String,
    pub primary: String,
    /// The primary metric on the test split, read once after selection on validation.
    pub value: f64,
    pub selected_epoch: usize,
    pub metrics: Vec<(String, f64)>,
    /// The run folder (its `test_scores.json` and `blind_levels.json`).
    pub run: String,
    pub seconds: f64,
}

/// One probe run's outcome (`result.json` beside its run; the scores are in its `probe.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeResult {
    /// A trained probe, or nearest neighbour on the frozen CLS (results written before there
    /// were two read as probes).
    #[serde(default = "trained_probe")]
    pub protocol: Protocol,
    pub variant: String,
    pub task: String,
    pub seed_index: usize,
    pub primary: String,
    /// The primary metric on the test split, per head seed.
    pub values: Vec<f64>,
    pub run: String,
    pub seconds: f64,
}

fn trained_probe() -> Protocol {
    Protocol::Probe
}

pub fn read_json<T: DeserializeOwned>(path: &Path) -> Option<T> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(value)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}
