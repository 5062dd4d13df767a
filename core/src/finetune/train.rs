//! The fine-tuning loop, top to bottom: task settings → data → backbone with the task's prompt →
//! the plugin's head → AdamW with layer-wise decay → epochs of training and evaluation → the
//! task checkpoint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::data::{batch_tensor, check_skipped_in, evenly_spaced, TaskImages, BLIND_TRAIN_SAMPLES};
use super::evaluate::{evaluate_in, format_metrics, Evaluation};
use super::resume::{self, Progress, Writer};
use super::sample::load_targets;
use super::setup::Setup;
use super::task_model::TaskModel;
use crate::charts::curves::{write_curves, Series};
use crate::checkpoint::manifest::Selection;
use crate::config::Config;
use crate::data::loader::{Dataset, Loader};
use crate::distributed::gradients::sum_gradients;
use crate::distributed::{self, World};
use crate::json::null_as_nan;
use crate::optim::{add_grads, ensure_finite_loss, share, AdamW, CosineSchedule};
use crate::plugin_host::scoring::Scorer;
use crate::plugin_host::Plugin;
use crate::run_dir::RunDir;
use crate::run_log::{self, MetricsLog};
use crate::scoring::blind::{blind_levels, BlindLevel};
use crate::scoring::ScoredSplit;

/// Metrics of one epoch's evaluation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub step: usize,
    #[serde(deserialize_with = "null_as_nan::number")]
    pub train_loss: f64,
    #[serde(deserialize_with = "null_as_nan::number")]
    pub lr: f64,
    #[serde(deserialize_with = "null_as_nan::named")]
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

/// The delivered model's test metrics with their per-sample rows, and the image-blind levels on
/// the same split (from a sample of the training targets), both written into the run's folder.
fn read_test(
    scorer: &Scorer,
    model: &TaskModel,
    eval: Evaluation,
    train: &[clasp_sdk::Record],
    run: &RunDir,
) -> Result<(ScoredSplit, Vec<BlindLevel>)> {
    let test = ScoredSplit::score(scorer, eval.metrics, &eval.predictions, &eval.targets)?;
    test.write(&run.path.join(TEST_SCORES_FILE))?;
    let samples = evenly_spaced(train, BLIND_TRAIN_SAMPLES);
    let blind_train = load_targets(&samples, model.img_size());
    let blind = blind_levels(scorer, &blind_train, &eval.targets)?;
    std::fs::write(
        run.path.join(BLIND_LEVELS_FILE),
        serde_json::to_vec(&blind)?,
    )?;
    Ok((test, blind))
}

/// A batch of `(image, target)` items.
type Items = Vec<<TaskImages as Dataset>::Item>;

/// One optimiser step on `micro` batches of `(image, target)` items at `(lr, weight_decay)`
/// (more than one with `finetune.accumulate`) on this process, and as many on every other process
/// of `world`: each batch's loss weighted by its share of the whole step's items, the gradients
/// summed over batches and processes. The step's mean loss, or `None` when no process has an
/// item (every image of the step unreadable): then no process steps.
fn train_step(
    model: &TaskModel,
    opt: &mut AdamW,
    micro: &[Items],
    (lr, weight_decay): (f64, f64),
    step: usize,
    world: &World,
) -> Result<Option<f64>> {
    let total = world.sum_count(micro.iter().map(Vec::len).sum())?;
    if total == 0 {
        return Ok(None);
    }
    let (mut grads, mut value) = (BTreeMap::new(), [0.0]);
    for items in micro.iter().filter(|items| !items.is_empty()) {
        let x = batch_tensor(items, model.img_size(), model.backbone.store.device())?;
        let targets: Vec<clasp_sdk::Record> = items.iter().map(|(_, r)| r.clone()).collect();
        let loss = model.head.loss(&model.forward(&x, true)?, &targets)?;
        let v = loss.to_scalar::<f32>()? as f64;
        ensure_finite_loss(step, lr, &[("loss", v)])?;
        let w = share(items.len(), total);
        add_grads(&mut grads, opt, &(loss * w)?.backward()?)?;
        value[0] += v * w;
    }
    sum_gradients(world, opt, &mut grads)?;
    world.sum_f64(&mut value)?;
    opt.step(&grads, lr, weight_decay)
        .with_context(|| format!("step {step}"))?;
    Ok(Some(value[0]))
}

/// The primary metric among an epoch's validation `metrics` (`None` when not validated); a
/// plugin that leaves it out is an error, a non-finite value a warning (that epoch cannot win).
fn primary_value(
    metrics: &[(String, f64)],
    primary: &str,
    task: &str,
    epoch: usize,
) -> Result<Option<f64>> {
    let value = metrics.iter().find(|(k, _)| *k == primary).map(|m| m.1);
    match value {
        None if !metrics.is_empty() => {
            bail!("plugin `{task}` scored validation without its primary metric `{primary}`")
        }
        Some(v) if !v.is_finite() => tracing::warn!(
            "epoch {}: validation {primary} is {v}: this epoch cannot be chosen",
            epoch + 1
        ),
        _ => {}
    }
    Ok(value)
}

/// The selection after `epoch` when it replaces the one so far: a better validation value, or —
/// when no epoch has a number on validation — the last epoch.
fn select(
    so_far: Option<&Selection>,
    epoch: usize,
    value: Option<f64>,
    last: bool,
    primary: &str,
) -> Option<Selection> {
    let best = so_far.and_then(|s| s.validation.as_ref().map(|v| v.1));
    let improved = match (value, best) {
        (Some(v), Some(b)) => v > b,
        (Some(v), None) => v.is_finite(),
        (None, _) => false,
    };
    let take_last = last && so_far.is_none();
    (improved || take_last).then(|| Selection {
        epoch: epoch + 1,
        validation: value.filter(|_| improved).map(|v| (primary.to_string(), v)),
    })
}

impl EpochMetrics {
    /// The line printed after an epoch of `epochs`.
    fn summary(&self, epochs: usize) -> String {
        let val = match self.metrics.is_empty() {
            true => String::new(),
            false => format!(", val {}", format_metrics(&self.metrics)),
        };
        format!(
            "epoch {}/{epochs}: loss {:.4}{val}",
            self.epoch, self.train_loss
        )
    }
}

/// Training loss, then each metric, one value per epoch.
fn curve_series(history: &[EpochMetrics]) -> Vec<Series<'_>> {
    let mut out = vec![Series::numbered(
        "train loss",
        history.iter().map(|e| e.train_loss),
    )];
    // Metric names from an evaluated epoch; epochs without evaluation are gaps (NaN).
    if let Some(evaluated) = history.iter().find(|e| !e.metrics.is_empty()) {
        for (name, _) in &evaluated.metrics {
            let values = history.iter().map(|e| {
                e.metrics
                    .iter()
                    .find(|m| m.0 == *name)
                    .map_or(f64::NAN, |m| m.1)
            });
            out.push(Series::numbered(name, values));
        }
    }
    out
}

/// One epoch of training steps (`accumulate` batches each, on every process of `world`),
/// counting on from `step`; the mean loss of its steps.
fn train_epoch(
    model: &TaskModel,
    opt: &mut AdamW,
    loader: &Loader<TaskImages>,
    epoch: usize,
    (schedule, weight_decay, accumulate): (&CosineSchedule, f64, usize),
    step: &mut usize,
    (max_skipped, world): (f64, &World),
) -> Result<f64> {
    let what = format!("fine-tuning `{}`, epoch {}", model.task(), epoch + 1);
    let (started, in_collectives) = (Instant::now(), distributed::seconds_in_collectives());
    let mut epoch_batches = loader.epoch(epoch as u64)?;
    let bar = run_log::progress(&what, loader.batches_per_epoch()?, "batches")?;
    let (mut loss_sum, mut steps, mut read) = (0.0, 0, 0);
    let mut micro: Vec<Items> = Vec::new();
    let mut batches_out = 0;
    // Every process has as many batches (some possibly empty), so all take each step together.
    loop {
        micro.clear();
        micro.extend(epoch_batches.by_ref().take(accumulate).map(|b| b.items));
        if micro.is_empty() {
            break;
        }
        batches_out += micro.len();
        read += micro.iter().map(Vec::len).sum::<usize>();
        let lr = schedule.at(*step);
        let step_loss = train_step(model, opt, &micro, (lr, weight_decay), *step, world)
            .with_context(|| what.clone())?;
        if let Some(loss) = step_loss {
            (loss_sum, steps, *step) = (loss_sum + loss, steps + 1, *step + 1);
        }
        bar.inc(micro.len() as u64);
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    match world.size {
        1 => tracing::debug!("{what}: {seconds:.1} s"),
        _ => tracing::info!(
            "{what}: {seconds:.1} s, {:.1} s of it in collectives (rank {} of {})",
            distributed::seconds_in_collectives() - in_collectives,
            world.rank,
            world.size
        ),
    }
    // A loader worker that died ends the epoch early; the other ranks would go on without this
    // one (and one process would train on part of the epoch).
    if batches_out < epoch_batches.num_batches() {
        bail!(
            "{what}: the loader stopped after {batches_out} of {} batches (a worker failed)",
            epoch_batches.num_batches()
        );
    }
    check_skipped_in(world, &what, &epoch_batches.skipped(), read, max_skipped)?;
    Ok(loss_sum / steps.max(1) as f64)
}

/// Every rank's position in its head's dropout stream, by rank (a collective: every rank calls
/// it), which the checkpoint keeps so each rank resumes its own stream.
fn dropout_positions(model: &TaskModel, world: &World) -> Result<Vec<u64>> {
    let mut by_rank = vec![0f64; world.size];
    by_rank[world.rank] = model.head.state.dropout_position() as f64;
    world.sum_f64(&mut by_rank)?;
    Ok(by_rank.into_iter().map(|p| p as u64).collect())
}

/// How far one invocation goes.
#[derive(Debug, Clone, Copy, Default)]
pub struct FinetuneRun {
    /// Continue after the last finished epoch of the run's newest checkpoint.
    pub resume: bool,
    /// Stop after this many epochs of this invocation (a later `resume` continues).
    pub max_epochs: Option<usize>,
}

/// Fine-tunes `plugin`'s task from the start to the end.
pub fn finetune(
    config: &Config,
    plugin: Plugin,
    backbone_dir: Option<&Path>,
    run: &RunDir,
    device: &Device,
) -> Result<FinetuneOutcome> {
    let how = FinetuneRun::default();
    let out = finetune_for(config, plugin, backbone_dir, run, device, how)?;
    Ok(out.expect("one process runs to its last epoch without max_epochs"))
}

/// Fine-tunes as `how` says; `None` when it stopped at `how.max_epochs` before the last epoch,
/// and on every process but rank 0 of a data-parallel job (which alone selects, scores and writes).
pub fn finetune_for(
    config: &Config,
    plugin: Plugin,
    backbone_dir: Option<&Path>,
    run: &RunDir,
    device: &Device,
    how: FinetuneRun,
) -> Result<Option<FinetuneOutcome>> {
    let (ft, max_skipped) = (&config.finetune, config.data.max_skipped_fraction);
    // Under data parallelism every process trains and predicts its share of the validation and
    // test splits; rank 0 scores them and alone writes.
    let world = distributed::world();
    let main = world.is_main();
    let task = plugin.name().to_string();
    // 1–4. Task settings and data, backbone with the task's prompt, head, optimiser.
    let Setup {
        task_config,
        train_records,
        val,
        test,
        model,
        train_loader,
        mut opt,
        schedule,
    } = Setup::new(config, &plugin, backbone_dir, run, device, &world)?;
    let steps = (
        &schedule,
        config.optim.weight_decay,
        config.finetune.accumulate.get(),
    );

    // 5. Resume after the last finished epoch of this run.
    let selected_dir = run.checkpoints().join(SELECTED_CHECKPOINT);
    let checkpointer = resume::checkpointer(run.checkpoints(), config, backbone_dir, &plugin)?;
    let mut at = Progress::default();
    if how.resume {
        let hash = &run.config_hash;
        let writer = if main { Writer::This } else { Writer::Another };
        at = resume::resume(
            &checkpointer,
            &model,
            &mut opt,
            &selected_dir,
            (hash, writer),
        )?;
    }
    let first_epoch = at.epochs_done;

    // 6. Epochs: train, validate, keep the best epoch on validation.
    let log_path = run.path.join("metrics.jsonl");
    let mut log = match main {
        true => Some(MetricsLog::open(
            &log_path,
            (at.epochs_done > 0).then_some(at.step),
        )?),
        false => None,
    };
    let primary = plugin.spec.primary_metric.to_string();
    for epoch in first_epoch..ft.epochs {
        if how.max_epochs.is_some_and(|m| epoch - first_epoch >= m) {
            println!(
                "stopped after epoch {epoch} of {}; `--resume` continues",
                ft.epochs
            );
            return Ok(None);
        }
        let loader = &train_loader;
        let train_loss = train_epoch(
            &model,
            &mut opt,
            loader,
            epoch,
            steps,
            &mut at.step,
            (max_skipped, &world),
        )?;
        at.dropout_positions = dropout_positions(&model, &world)?;

        // Validation every `eval_every` epochs and after the last, shared by every process (with
        // rank 0's batch-norm statistics) and scored by rank 0; the test split is not looked at
        // until an epoch is selected.
        let last = epoch + 1 == ft.epochs;
        let validation = match !val.is_empty() && (last || (epoch + 1) % ft.eval_every.max(1) == 0)
        {
            true => {
                model.take_main_buffers(&world)?;
                evaluate_in(&world, &model, val.clone(), ft, max_skipped, device)?
            }
            false => None,
        };
        let Some(log) = log.as_mut() else {
            at.epochs_done = epoch + 1;
            continue;
        };
        let metrics = validation.map_or_else(Vec::new, |v| v.metrics);
        let value = primary_value(&metrics, &primary, &task, epoch)?;
        let selected_now = select(at.selected.as_ref(), epoch, value, last, &primary);
        if let Some(s) = &selected_now {
            at.selected = Some(s.clone());
        }
        let record = EpochMetrics {
            epoch: epoch + 1,
            step: at.step,
            train_loss,
            lr: schedule.at(at.step.saturating_sub(1)),
            metrics,
        };
        println!("{}", record.summary(ft.epochs));
        log.write(&record)?;
        log.flush()?;
        at.history.push(record);
        at.epochs_done = epoch + 1;
        // The state first, then the delivered model: a run stopped between the two delivers
        // it again on resume.
        resume::save(&checkpointer, &at, &model, &opt, &run.config_hash)?;
        if let Some(s) = selected_now {
            model.save(&selected_dir, at.step as u64, &run.config_hash, Some(s))?;
        }
        let curves = run.path.join("curves.png");
        if let Err(e) = write_curves(&curves, "epoch", &curve_series(&at.history)) {
            tracing::warn!("no curves this epoch: {e:#}");
        }
    }

    // 7. The selected epoch's model, read once on the test split (shared by every process like
    // validation), beside the image-blind levels. Rank 0 tells the others which epoch it
    // selected; it wrote that epoch's model before this broadcast.
    let selected_epoch = world.main_value(at.selected.as_ref().map(|s| s.epoch as u64))?;
    let selected_epoch = selected_epoch.context("no epochs were run (finetune.epochs = 0)")?;
    let model = if selected_epoch as usize == ft.epochs {
        model.take_main_buffers(&world)?;
        model
    } else {
        TaskModel::load_with_plugin(&selected_dir, plugin.clone(), device)?
            .with_precision(config.run.precision)
    };
    let Some(eval) = evaluate_in(&world, &model, test, ft, max_skipped, device)? else {
        return Ok(None);
    };
    let Progress {
        history, selected, ..
    } = at;
    let selected = selected.context("rank 0 holds the selection")?;
    let scorer = Scorer {
        plugin: plugin.clone(),
        config: task_config.clone(),
    };
    let (test, blind) = read_test(&scorer, &model, eval, &train_records, run)?;
    checkpointer.clear()?; // a finished run keeps its delivered model, not its training state
    Ok(Some(FinetuneOutcome {
        history,
        selected,
        test,
        blind,
        checkpoint: selected_dir,
    }))
}
