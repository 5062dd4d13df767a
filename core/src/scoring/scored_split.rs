//! A split's scores as a run leaves them on disk: the plugin's metrics and the per-sample rows
//! they follow from, so intervals and paired differences can be drawn later, across runs,
//! without predicting again.

use std::path::Path;

use anyhow::{Context, Result};
use clasp_sdk::abi::{Record, SampleStats};
use serde::{Deserialize, Serialize};

use crate::plugin_host::scoring::Scorer;

/// One scored sample: the rows of `sample_statistics`, in plain types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// What the sample is resampled with (the person it shows).
    pub group: u64,
    pub values: Vec<f64>,
}

impl Sample {
    pub fn from_abi(s: &SampleStats) -> Self {
        Self {
            group: s.group,
            values: s.values.to_vec(),
        }
    }

    pub fn to_abi(&self) -> SampleStats {
        SampleStats {
            group: self.group,
            values: self.values.clone().into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredSplit {
    /// The plugin's metrics, in its order.
    pub metrics: Vec<(String, f64)>,
    /// Per-sample rows; `None` when the plugin offers none (no intervals then).
    pub samples: Option<Vec<Sample>>,
}

impl ScoredSplit {
    /// Scores `predictions` against `targets` with the plugin: its metrics and its rows.
    pub fn score(
        scorer: &Scorer,
        metrics: Vec<(String, f64)>,
        predictions: &[Record],
        targets: &[Record],
    ) -> Result<Self> {
        let samples = scorer
            .sample_statistics(predictions, targets)?
            .map(|rows| rows.iter().map(Sample::from_abi).collect());
        Ok(Self { metrics, samples })
    }

    /// The value of metric `name`.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics.iter().find(|(k, _)| k == name).map(|m| m.1)
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
    }

    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
    }
}
