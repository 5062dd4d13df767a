//! The plugin calls that score a split beyond `evaluate`: per-sample statistics and the metrics
//! of a resample of them (for confidence intervals), and the image-blind predictors a result is
//! read against. Each answers `None` when the plugin does not offer it.

use abi_stable::std_types::RStr;
use anyhow::Result;
use clasp_sdk::abi::{Record, SampleStats};
use clasp_sdk::task::NamedPredictionSets;

use super::loader::Plugin;

/// A plugin with its resolved task configuration: everything a scoring call needs.
#[derive(Clone)]
pub struct Scorer {
    pub plugin: Plugin,
    /// The task's resolved configuration, as the JSON object plugins receive.
    pub config: String,
}

impl Scorer {
    /// The plugin's metrics of `predictions` against `targets`.
    pub fn evaluate(
        &self,
        predictions: &[Record],
        targets: &[Record],
    ) -> Result<Vec<(String, f64)>> {
        let m = super::task_head::evaluate(&self.plugin, &self.config, predictions, targets)?;
        Ok(m.into_iter()
            .map(|m| (m.name.into_string(), m.value))
            .collect())
    }

    /// One row per scored sample of `predictions` against `targets`.
    pub fn sample_statistics(
        &self,
        predictions: &[Record],
        targets: &[Record],
    ) -> Result<Option<Vec<SampleStats>>> {
        let Some(call) = self.plugin.module.sample_statistics().into_option() else {
            return Ok(None);
        };
        let rows = call(
            RStr::from(self.config.as_str()),
            predictions.into(),
            targets.into(),
        )
        .into_result()
        .map_err(|e| self.plugin.call_error("sample_statistics", e))?;
        Ok(rows.into_option().map(|r| r.into_vec()))
    }

    /// The metrics of `samples` (rows of [`Self::sample_statistics`], possibly repeated).
    pub fn metrics_of_samples(
        &self,
        samples: &[SampleStats],
    ) -> Result<Option<Vec<(String, f64)>>> {
        let Some(call) = self.plugin.module.metrics_of_samples().into_option() else {
            return Ok(None);
        };
        let m = call(RStr::from(self.config.as_str()), samples.into())
            .into_result()
            .map_err(|e| self.plugin.call_error("metrics_of_samples", e))?;
        Ok(m.into_option().map(|m| {
            m.into_iter()
                .map(|m| (m.name.into_string(), m.value))
                .collect()
        }))
    }

    /// The plugin's image-blind predictions for `test`, by name.
    pub fn blind_predictions(
        &self,
        train: &[Record],
        test: &[Record],
    ) -> Result<Option<NamedPredictionSets>> {
        let Some(call) = self.plugin.module.blind_predictions().into_option() else {
            return Ok(None);
        };
        let named = call(RStr::from(self.config.as_str()), train.into(), test.into())
            .into_result()
            .map_err(|e| self.plugin.call_error("blind_predictions", e))?;
        Ok(named.into_option().map(|n| {
            n.into_iter()
                .map(|p| (p.name.into_string(), p.predictions.into_vec()))
                .collect()
        }))
    }
}
