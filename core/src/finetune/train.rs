//! The fine-tuning loop, top to bottom: task settings → data → backbone with the task's prompt →
//! the plugin's head → AdamW with layer-wise decay → epochs of training and evaluation → the
//! task checkpoint.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::Device;
use indicatif::{ProgressBar, ProgressStyle};

use super::curves::{write_curves, Series};
use super::data::{
    batch_tensor, check_skipped, evenly_spaced, probe_flip, task_loader, TaskSplits, TrainOrder,
    BLIND_TRAIN_SAMPLES,
};
use super::evaluate::{evaluate, format_metrics};
use super::sample::load_targets;
use super::task_model::TaskModel;
use super::task_prompt::task_backbone;
use crate::checkpoint::manifest::Selection;
use crate::config::Config;
use crate::optim::{backbone_and_head_groups, ensure_finite_loss, AdamW, CosineSchedule};
use crate::plugin_host::scoring::Scorer;
use crate::plugin_host::task_config::resolve;
use crate::plugin_host::task_head::{RecordFlip, TaskHead};
use crate::plugin_host::Plugin;
use crate::run_dir::RunDir;
use crate::scoring::blind::{blind_levels, BlindLevel};
use crate::scoring::ScoredSplit;

/// Metrics of one epoch's evaluation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub step: usize,
    pub train_loss: f64,
    pub lr: f64,
    pub metrics: Vec<(String, f64)>,
}

pub struct FinetuneOutcome {
    /// Per epoch: training loss and the validation metrics (when evaluated).
    pub history: Vec<EpochMetrics>,
    /// The epoch delivered: the best on the validation split by the plugin's primary metric,
    /// or the last when there is no validation split.
    pub selected: Selection,
    /// The delivered model's test metrics and per-sample rows, read once, after selection.
    pub test: ScoredSplit,
    /// The image-blind levels on the same test split.
    pub blind: Vec<BlindLevel>,
    /// The delivered task checkpoint (`checkpoints/task_selected`).
    pub checkpoint: PathBuf,
}

/// Where a run folder keeps its test scores and its image-blind levels.
pub const TEST_SCORES_FILE: &str = "test_scores.json";
pub const BLIND_LEVELS_FILE: &str = "blind_levels.json";
/// The checkpoint a fine-tuning run delivers.
pub const SELECTED_CHECKPOINT: &str = "task_selected";

/// Training loss, then each metric, one value per epoch.
fn curve_series(history: &[EpochMetrics]) -> Vec<Series<'_>> {
    let mut out = vec![Series {
        name: "train loss",
        values: history.iter().map(|e| e.train_loss).collect(),
    }];
    // Metric names from an evaluated epoch; epochs without evaluation are gaps (NaN).
    if let Some(evaluated) = history.iter().find(|e| !e.metrics.is_empty()) {
        for (name, _) in &evaluated.metrics {
            out.push(Series {
                name,
                values: history
                    .iter()
                    .map(|e| {
                        e.metrics
                            .iter()
                            .find(|m| m.0 == *name)
                            .map_or(f64::NAN, |m| m.1)
                    })
                    .collect(),
            });
        }
    }
    out
}

pub fn finetune(
    config: &Config,
    plugin: Plugin,
    backbone_dir: Option<&Path>,
    run: &RunDir,
    device: &Device,
) -> Result<FinetuneOutcome> {
    let ft = &config.finetune;
    let max_skipped = config.data.max_skipped_fraction;
    let task = plugin.name().to_string();

    // 1. The task's settings and data, as the plugin reads them.
    let task_config = resolve(&plugin, &config.task)?;
    let TaskSplits {
        root,
        train,
        val,
        test,
    } = TaskSplits::load(&plugin, &task_config, ft.data.as_deref())?;
    if val.is_empty() {
        tracing::warn!(
            "{}: no validation split (see `clasp plugins inspect {task}` for where it is read): \
             no epoch is selected, the last one is delivered",
            root.display()
        );
    }

    // 2. The backbone, with a prompt for this task seeded from its description sentence.
    let bb = task_backbone(config, &plugin, backbone_dir, run, device)?;

    // 3. The plugin's head, built through the vtable, with what it keeps of the training split.
    let head = TaskHead::build_for_training(
        plugin.clone(),
        task_config.clone(),
        bb.vit.cfg.embed_dim,
        device,
        config.run.seed,
        &train,
    )?;
    let model = TaskModel::new(bb, head);
    let size = model.img_size();
    // How batches are drawn; random flips when the plugin mirrors its targets.
    let mirror = probe_flip(
        RecordFlip {
            plugin: plugin.clone(),
            config: task_config.clone(),
        },
        &train,
        size,
    )?;
    let order = TrainOrder::from_settings(ft, &task, &train, mirror)?;

    // 4. AdamW over backbone and head, layer-wise decay, the head at `head_lr_scale`.
    let o = &config.optim;
    let mut opt = AdamW::new(
        backbone_and_head_groups(
            &model.backbone.store.vars(),
            &model.head.state.params.vars(),
            model.backbone.vit.cfg.depth,
            o.layer_decay,
            o.head_lr_scale,
        ),
        o.adamw(),
    )?;
    let train_records = train.clone();
    let train_loader = task_loader(train, size, Some(order), ft, config.run.seed);
    let steps_per_epoch = train_loader.batches_per_epoch()?;
    let schedule = CosineSchedule {
        base: o.lr,
        final_value: o.min_lr,
        total_steps: ft.epochs * steps_per_epoch,
        warmup_steps: ft.warmup_epochs * steps_per_epoch,
        warmup_start: 0.0,
    };

    // 5. Epochs.
    let metrics_path = run.path.join("metrics.jsonl");
    let mut metrics_file = std::fs::File::create(&metrics_path)
        .with_context(|| format!("creating {}", metrics_path.display()))?;
    let mut history = Vec::new();
    let mut step = 0;
    let primary = plugin.spec.primary_metric.to_string();
    let selected_dir = run.checkpoints().join(SELECTED_CHECKPOINT);
    let mut selected: Option<Selection> = None;
    for epoch in 0..ft.epochs {
        let bar =
            ProgressBar::new(steps_per_epoch as u64).with_style(ProgressStyle::with_template(
                "epoch {msg} {bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}]",
            )?);
        bar.set_message(format!("{}/{}", epoch + 1, ft.epochs));
        let (mut loss_sum, mut batches, mut read) = (0.0, 0, 0);
        let mut epoch_batches = train_loader.epoch(epoch as u64)?;
        for batch in epoch_batches.by_ref() {
            if batch.items.is_empty() {
                continue;
            }
            read += batch.items.len();
            let x = batch_tensor(&batch.items, size, device)?;
            let targets: Vec<clasp_sdk::Record> =
                batch.items.iter().map(|(_, r)| r.clone()).collect();
            let output = model.forward(&x, true)?;
            let loss = model.head.loss(&output, &targets)?;
            let loss_value = loss.to_scalar::<f32>()? as f64;
            ensure_finite_loss(step, schedule.at(step), &[("loss", loss_value)])
                .with_context(|| format!("fine-tuning `{task}`, epoch {}", epoch + 1))?;
            let grads = loss.backward()?;
            opt.step(&grads, schedule.at(step), o.weight_decay)
                .with_context(|| {
                    format!("fine-tuning `{task}`, epoch {}, step {step}", epoch + 1)
                })?;
            loss_sum += loss_value;
            batches += 1;
            step += 1;
            bar.inc(1);
        }
        bar.finish_and_clear();
        check_skipped(
            &format!("epoch {}", epoch + 1),
            &epoch_batches.skipped(),
            read,
            max_skipped,
        )?;

        // Validation through the plugin's decode and metrics, every `eval_every` epochs and
        // after the last; the test split is not looked at until an epoch is selected.
        let last = epoch + 1 == ft.epochs;
        let metrics = if !val.is_empty() && (last || (epoch + 1) % ft.eval_every.max(1) == 0) {
            evaluate(&model, val.clone(), ft, max_skipped, device)?.metrics
        } else {
            Vec::new()
        };
        let value = metrics.iter().find(|(k, _)| *k == primary).map(|m| m.1);
        if !metrics.is_empty() {
            match value {
                None => bail!(
                    "plugin `{task}` scored validation without its primary metric `{primary}`"
                ),
                Some(v) if !v.is_finite() => tracing::warn!(
                    "epoch {}: validation {primary} is {v}: this epoch cannot be chosen",
                    epoch + 1
                ),
                Some(_) => {}
            }
        }
        let best = selected
            .as_ref()
            .and_then(|s| s.validation.as_ref().map(|v| v.1));
        let improved = match (value, best) {
            (Some(v), Some(b)) => v > b,
            (Some(v), None) => v.is_finite(),
            (None, _) => false,
        };
        // Without a number on validation, the last epoch is delivered.
        let take_last = last && selected.is_none();
        if improved || take_last {
            let s = Selection {
                epoch: epoch + 1,
                validation: value.filter(|_| improved).map(|v| (primary.clone(), v)),
            };
            model.save(
                &selected_dir,
                step as u64,
                &run.config_hash,
                Some(s.clone()),
            )?;
            selected = Some(s);
        }
        let record = EpochMetrics {
            epoch: epoch + 1,
            step,
            train_loss: loss_sum / batches.max(1) as f64,
            lr: schedule.at(step.saturating_sub(1)),
            metrics,
        };
        println!(
            "epoch {}/{}: loss {:.4}{}",
            record.epoch,
            ft.epochs,
            record.train_loss,
            if record.metrics.is_empty() {
                String::new()
            } else {
                format!(", val {}", format_metrics(&record.metrics))
            }
        );
        writeln!(metrics_file, "{}", serde_json::to_string(&record)?)?;
        history.push(record);
        write_curves(&run.path.join("curves.png"), &curve_series(&history))?;
    }

    // 6. The selected epoch's model, read once on the test split, beside the image-blind levels.
    let selected = selected.context("no epochs were run (finetune.epochs = 0)")?;
    let model = if selected.epoch == ft.epochs {
        model
    } else {
        TaskModel::load_with_plugin(&selected_dir, plugin.clone(), device)?
    };
    let eval = evaluate(&model, test, ft, max_skipped, device)?;
    let scorer = Scorer {
        plugin: plugin.clone(),
        config: task_config.clone(),
    };
    let test = ScoredSplit::score(&scorer, eval.metrics, &eval.predictions, &eval.targets)?;
    test.write(&run.path.join(TEST_SCORES_FILE))?;
    let blind_train = load_targets(&evenly_spaced(&train_records, BLIND_TRAIN_SAMPLES), size);
    let blind = blind_levels(&scorer, &blind_train, &eval.targets)?;
    std::fs::write(
        run.path.join(BLIND_LEVELS_FILE),
        serde_json::to_vec(&blind)?,
    )?;
    Ok(FinetuneOutcome {
        history,
        selected,
        test,
        blind,
        checkpoint: selected_dir,
    })
}
