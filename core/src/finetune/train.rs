//! The fine-tuning loop, top to bottom: task settings → data → backbone with the task's prompt →
//! the plugin's head → AdamW with layer-wise decay → epochs of training and evaluation → the
//! task checkpoint.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::Device;
use indicatif::{ProgressBar, ProgressStyle};

use super::curves::{write_curves, Series};
use super::data::{batch_tensor, probe_flip, report_skipped, task_loader, TrainOrder};
use super::evaluate::{evaluate, format_metrics};
use super::task_model::TaskModel;
use crate::backbone::Backbone;
use crate::checkpoint;
use crate::config::Config;
use crate::optim::{backbone_and_head_groups, AdamW, CosineSchedule};
use crate::plugin_host::task_config::resolve;
use crate::plugin_host::task_head::{dataset, RecordFlip, TaskHead};
use crate::plugin_host::Plugin;
use crate::run_dir::RunDir;
use crate::task_embedding::{hashed_text_embedding, read_text_embedding};
use crate::teacher::task_text::TaskTextEmbedder;

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
    pub history: Vec<EpochMetrics>,
    /// The best epoch by the plugin's primary metric.
    pub best: EpochMetrics,
    pub checkpoint: PathBuf,
}

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
    let task = plugin.name().to_string();

    // 1. The task's settings and data, as the plugin reads them.
    let task_config = resolve(&plugin.spec, &config.task)?;
    if ft.data.is_empty() {
        bail!("config key `finetune.data` is empty: point it at the task's dataset root");
    }
    let root = PathBuf::from(&ft.data);
    let train = dataset(&plugin, &task_config, &root, "train")?;
    let test = dataset(&plugin, &task_config, &root, "test")?;
    if train.is_empty() || test.is_empty() {
        bail!(
            "{}: the train ({}) or test ({}) split is empty",
            root.display(),
            train.len(),
            test.len()
        );
    }

    // 2. The backbone, with a prompt for this task seeded from its description sentence.
    let mut bb = match backbone_dir {
        Some(dir) => checkpoint::load(dir, device)?,
        None => Backbone::fresh(config, device, run.config_hash.clone())?,
    };
    if let Some(p) = bb.vit.cfg.prompts.clone() {
        let configured = (!ft.task_embedding.is_empty()).then(|| PathBuf::from(&ft.task_embedding));
        if bb.vit.tasks().contains(&task) {
            if let Some(path) = configured {
                tracing::warn!(
                    "the backbone already has a `{task}` prompt; {} (finetune.task_embedding) is not used",
                    path.display()
                );
            }
        } else if let Some(path) = configured {
            bb.vit
                .add_task(&task, &read_text_embedding(&path, p.text_dim)?)?;
            tracing::info!(task, "new task prompt from {}", path.display());
        } else if !config.model.prompts.teacher.is_empty() {
            let teacher = PathBuf::from(&config.model.prompts.teacher);
            let e = TaskTextEmbedder::load(&teacher, p.text_dim)?
                .embed(plugin.spec.description.as_str())?;
            bb.vit.add_task(&task, &e)?;
            tracing::info!(
                task,
                "new task prompt from the teacher's embedding of the description"
            );
        } else {
            let e = hashed_text_embedding(plugin.spec.description.as_str(), p.text_dim)?;
            bb.vit.add_task(&task, &e)?;
            tracing::info!(
                task,
                "new task prompt from the description sentence (no teacher configured)"
            );
        }
    }

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
    for epoch in 0..ft.epochs {
        let bar =
            ProgressBar::new(steps_per_epoch as u64).with_style(ProgressStyle::with_template(
                "epoch {msg} {bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}]",
            )?);
        bar.set_message(format!("{}/{}", epoch + 1, ft.epochs));
        let (mut loss_sum, mut batches) = (0.0, 0);
        let mut epoch_batches = train_loader.epoch(epoch as u64)?;
        for batch in epoch_batches.by_ref() {
            if batch.items.is_empty() {
                continue;
            }
            let x = batch_tensor(&batch.items, size, device)?;
            let targets: Vec<clasp_sdk::Record> =
                batch.items.iter().map(|(_, r)| r.clone()).collect();
            let output = model.forward(&x, true)?;
            let loss = model.head.loss(&output, &targets)?;
            let grads = loss.backward()?;
            opt.step(&grads, schedule.at(step), o.weight_decay)?;
            loss_sum += loss.to_scalar::<f32>()? as f64;
            batches += 1;
            step += 1;
            bar.inc(1);
        }
        bar.finish_and_clear();
        report_skipped(&format!("epoch {}", epoch + 1), &epoch_batches.skipped());

        // Evaluation through the plugin's decode and metrics, every `eval_every` epochs and
        // after the last.
        let last = epoch + 1 == ft.epochs;
        let metrics = if last || (epoch + 1) % ft.eval_every.max(1) == 0 {
            evaluate(&model, test.clone(), ft, device)?.metrics
        } else {
            Vec::new()
        };
        let record = EpochMetrics {
            epoch: epoch + 1,
            step,
            train_loss: loss_sum / batches.max(1) as f64,
            lr: schedule.at(step.saturating_sub(1)),
            metrics,
        };
        println!(
            "epoch {}/{}: loss {:.4}, {}",
            record.epoch,
            ft.epochs,
            record.train_loss,
            format_metrics(&record.metrics)
        );
        writeln!(metrics_file, "{}", serde_json::to_string(&record)?)?;
        history.push(record);
        write_curves(&run.path.join("curves.png"), &curve_series(&history))?;
    }

    // 6. The task checkpoint: backbone + prompt + head + which plugin it needs.
    let primary = plugin.spec.primary_metric.to_string();
    let score = |e: &EpochMetrics| {
        e.metrics
            .iter()
            .find(|(k, _)| *k == primary)
            .map_or(f64::MIN, |(_, v)| *v)
    };
    let best = history
        .iter()
        .max_by(|a, b| score(a).total_cmp(&score(b)))
        .cloned()
        .context("no epochs were run (finetune.epochs = 0)")?;
    let dir = model.save(
        &run.checkpoints().join("task_final"),
        step as u64,
        &run.config_hash,
    )?;
    Ok(FinetuneOutcome {
        history,
        best,
        checkpoint: dir,
    })
}
