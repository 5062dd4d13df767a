//! Evaluating a task model on a split: batches through the model, the plugin's decode, then the
//! plugin's metrics over the whole split.

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use clasp_sdk::abi::Record;

use super::data::{batch_tensor, check_skipped, task_loader};
use super::task_model::TaskModel;
use crate::config::schema::FinetuneSettings;

pub struct Evaluation {
    /// One decoded prediction per sample that could be read, in the split's order.
    pub predictions: Vec<Record>,
    /// The samples predicted, aligned with `predictions`.
    pub targets: Vec<Record>,
    /// The plugin's metrics, in its order.
    pub metrics: Vec<(String, f64)>,
    /// Samples skipped as unreadable.
    pub skipped: usize,
}

impl Evaluation {
    /// The value of metric `name`.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics.iter().find(|(k, _)| k == name).map(|m| m.1)
    }

    /// `mA 0.6123, accuracy 0.4012, …`
    pub fn summary(&self) -> String {
        format_metrics(&self.metrics)
    }
}

pub fn format_metrics(metrics: &[(String, f64)]) -> String {
    metrics
        .iter()
        .map(|(k, v)| format!("{k} {v:.4}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Each prediction merged by the plugin with the prediction for the mirrored image.
fn flip_test(model: &TaskModel, x: &Tensor, predictions: Vec<Record>) -> Result<Vec<Record>> {
    let mirrored = model.head.decode(&model.forward(&x.flip(&[3])?, false)?)?;
    predictions
        .iter()
        .zip(&mirrored)
        .map(|(p, m)| {
            model.head.merge_flip(p, m)?.with_context(|| {
                format!(
                    "config key `finetune.flip_test` = true: plugin `{}` offers no flip test",
                    model.head.plugin.name()
                )
            })
        })
        .collect()
}

/// Predicts every sample of `records` and scores the predictions with the plugin's metrics.
pub fn evaluate(
    model: &TaskModel,
    records: Vec<Record>,
    settings: &FinetuneSettings,
    max_skipped: f64,
    device: &Device,
) -> Result<Evaluation> {
    let size = model.img_size();
    let loader = task_loader(records, size, None, settings, 0);
    let mut batches = loader.epoch(0)?;
    let mut predictions = Vec::new();
    let mut targets = Vec::new();
    for batch in batches.by_ref() {
        if batch.items.is_empty() {
            continue;
        }
        let x = batch_tensor(&batch.items, size, device)?;
        let mut decoded = model.head.decode(&model.forward(&x, false)?)?;
        if settings.flip_test {
            decoded = flip_test(model, &x, decoded)?;
        }
        predictions.extend(decoded);
        targets.extend(batch.items.into_iter().map(|(_, r)| r));
    }
    let skipped = batches.skipped();
    check_skipped("evaluation", &skipped, predictions.len(), max_skipped)?;
    if predictions.is_empty() {
        anyhow::bail!("evaluation: none of the samples could be read");
    }
    let metrics = model
        .head
        .evaluate(&predictions, &targets)?
        .into_iter()
        .map(|m| (m.name.to_string(), m.value))
        .collect();
    Ok(Evaluation {
        predictions,
        targets,
        metrics,
        skipped: skipped.len(),
    })
}
