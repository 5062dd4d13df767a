//! Evaluating a task model on a split: batches through the model, the plugin's decode, then the
//! plugin's metrics over the whole split.

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use clasp_sdk::abi::Record;

use super::data::{batch_tensor, check_skipped, task_loader};
use super::task_model::TaskModel;
use crate::config::schema::FinetuneSettings;
use crate::data::loader::Skipped;
use crate::distributed::record_bytes::{Reader, Writer};
use crate::distributed::World;

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

/// One process's predictions over a list of samples: aligned with the samples it could read.
struct Predicted {
    predictions: Vec<Record>,
    targets: Vec<Record>,
    skipped: Vec<Skipped>,
}

fn predict(
    model: &TaskModel,
    records: Vec<Record>,
    settings: &FinetuneSettings,
    device: &Device,
) -> Result<Predicted> {
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
    Ok(Predicted {
        predictions,
        targets,
        skipped: batches.skipped(),
    })
}

/// Scores one process's (or the gathered) predictions with the plugin's metrics.
fn score(model: &TaskModel, p: Predicted, max_skipped: f64) -> Result<Evaluation> {
    check_skipped("evaluation", &p.skipped, p.predictions.len(), max_skipped)?;
    if p.predictions.is_empty() {
        anyhow::bail!("evaluation: none of the samples could be read");
    }
    let metrics = model
        .head
        .evaluate(&p.predictions, &p.targets)?
        .into_iter()
        .map(|m| (m.name.to_string(), m.value))
        .collect();
    Ok(Evaluation {
        predictions: p.predictions,
        targets: p.targets,
        metrics,
        skipped: p.skipped.len(),
    })
}

/// Predicts every sample of `records` and scores the predictions with the plugin's metrics.
pub fn evaluate(
    model: &TaskModel,
    records: Vec<Record>,
    settings: &FinetuneSettings,
    max_skipped: f64,
    device: &Device,
) -> Result<Evaluation> {
    score(
        model,
        predict(model, records, settings, device)?,
        max_skipped,
    )
}

/// [`evaluate`] shared by the processes of `world`: each predicts one contiguous block of
/// `records` (the same list on every process) with its model — which must be the same model
/// everywhere, batch norm's statistics included — and sends rank 0 its predictions, targets and
/// unreadable samples; rank 0 joins them in the list's order and scores them as one process
/// would (`Some` there, `None` on the others). Every process must call it.
pub fn evaluate_in(
    world: &World,
    model: &TaskModel,
    records: Vec<Record>,
    settings: &FinetuneSettings,
    max_skipped: f64,
    device: &Device,
) -> Result<Option<Evaluation>> {
    if world.size == 1 {
        return evaluate(model, records, settings, max_skipped, device).map(Some);
    }
    let n = records.len();
    let block = |r: usize| n * r / world.size;
    let (start, end) = (block(world.rank), block(world.rank + 1));
    let mine: Vec<Record> = records.into_iter().skip(start).take(end - start).collect();
    // A failure here (a plugin error) ends this process and, through `distributed::finish`,
    // the job; the others would otherwise wait in the gather.
    let p = predict(model, mine, settings, device)?;
    let mut w = Writer::default();
    w.records(&p.predictions);
    w.records(&p.targets);
    let skipped: Vec<Skipped> = p
        .skipped
        .into_iter()
        .map(|s| Skipped {
            index: s.index + start,
            ..s
        })
        .collect();
    w.skipped(&skipped);
    let Some(shares) = world.gather_bytes(w.into_bytes())? else {
        return Ok(None);
    };
    let mut all = Predicted {
        predictions: Vec::new(),
        targets: Vec::new(),
        skipped: Vec::new(),
    };
    for (rank, bytes) in shares.iter().enumerate() {
        let mut r = Reader::new(bytes);
        let read = (|| -> Result<()> {
            all.predictions.extend(r.records()?);
            all.targets.extend(r.records()?);
            all.skipped.extend(r.skipped()?);
            anyhow::ensure!(r.is_empty(), "bytes left over after the share");
            Ok(())
        })();
        read.with_context(|| format!("reading rank {rank}'s share of the evaluation"))?;
    }
    tracing::info!(
        "evaluation shared by {} processes: {} samples predicted",
        world.size,
        all.predictions.len()
    );
    score(model, all, max_skipped).map(Some)
}
