//! The pre-training loop, top to bottom: data and pseudo-labels → student, heads and EMA teacher
//! → AdamW → (resume) → steps of DINO + part + attribute losses → checkpoints, metrics, plots.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, Var};
use serde::Serialize;

use super::data::PretrainItem;
use super::dino_head::DinoHead;
use super::dino_loss::{collapse, teacher_temperature, DinoLoss, DinoOutput};
use super::gates::{
    gate_diagnostics, gate_entropy, gate_table, mi_loss, task_expert_mi, write_gate_heatmap,
    GateDiagnostics, GateTable,
};
use super::losses::{batch_labels, task_losses, BatchLabels};
use super::model::{Heads, DINO_HEAD};
use super::setup::Setup;
use super::state::{self, Progress};
use super::step_sum::{LabelCounts, Shares, StepSum, StepValues};
use crate::backbone::Backbone;
use crate::charts::curves::{write_curves, Series};
use crate::checkpoint::Checkpointer;
use crate::config::Config;
use crate::data::loader::Skipped;
use crate::distributed;
use crate::finetune::data::check_skipped_in;
use crate::model::Vit;
use crate::optim::groups::build_groups;
use crate::optim::{backbone_and_head_groups, ensure_finite_loss, AdamW, CosineSchedule};
use crate::run_dir::RunDir;
use crate::run_log::{self, MetricsLog};

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize)]
pub struct StepMetrics {
    pub step: usize,
    pub epoch: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub momentum: f64,
    pub teacher_temp: f64,
    pub loss: f64,
    pub loss_ssl: f64,
    pub loss_part: Option<f64>,
    pub loss_attr: Option<f64>,
    pub teacher_entropy: f64,
    pub teacher_mean_entropy: f64,
    pub kl: f64,
    pub grad_norm: f64,
    /// Set when the teacher's distribution has collapsed, with its kind.
    pub collapse: Option<String>,
    /// The mutual-information loss on the gates (with `pretrain.gate_mi_weight` > 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss_gate_mi: Option<f64>,
    /// Per task and PC-MoE block, the entropy of the global gate over ln E (1: uniform).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub gate_entropy: BTreeMap<String, Vec<f64>>,
    /// Per PC-MoE block, the task–expert mutual information of the global gates (nats).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gate_mi: Vec<f64>,
    /// What the gates read and the gradient they get.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate_diagnostics: Option<GateDiagnostics>,
    /// Global gate per task and PC-MoE block.
    #[serde(skip_serializing_if = "GateTable::is_empty")]
    pub gates: GateTable,
}

pub struct PretrainOutcome {
    pub steps: usize,
    pub checkpoint: PathBuf,
    pub last: Option<StepMetrics>,
    /// The collapse the last logged step showed, if any.
    pub collapse: Option<String>,
}

/// Runs (or, with `resume`, continues) pre-training as `config` describes into `run`.
pub fn pretrain(
    config: &Config,
    run: &RunDir,
    device: &Device,
    resume: bool,
) -> Result<PretrainOutcome> {
    let p = &config.pretrain;
    // Under data parallelism every process trains; rank 0 alone logs and writes.
    let world = distributed::world();
    let main = world.is_main();

    // 1.–2. Images with pseudo-labels, the loader, student, heads and EMA teacher.
    let setup = Setup::new(config, device, run.config_hash.clone(), &world)?;
    let (student, heads, teacher) = (&setup.student, &setup.heads, &setup.teacher);
    let steps_per_epoch = setup.steps_per_epoch;
    let total_steps = p.epochs * steps_per_epoch;
    let accumulate = p.accumulate.get();
    let tasks = setup.tasks;
    let used_tasks = [tasks.ssl, tasks.part.flatten(), tasks.attr.flatten()];
    let gate_tasks: Vec<&str> = used_tasks.into_iter().flatten().collect();

    // 3. AdamW over the student and its heads; schedules by step.
    let (mut opt, gate_vars) = optimizer(config, student, heads)?;
    let sched = Schedules::new(config, total_steps, steps_per_epoch);
    let last_layer: Vec<String> = DinoHead::last_layer_names()
        .iter()
        .map(|n| format!("{DINO_HEAD}.{n}"))
        .filter(|name| heads.store.get(name).is_some())
        .collect();
    let mut dino = DinoLoss::new(
        Tensor::zeros((1, p.dino.out_dim), candle_core::DType::F32, device)?,
        p.dino.student_temp,
        p.dino.center_momentum,
    );

    // 4. Resume from the newest checkpoint of this run.
    let checkpointer = Checkpointer::typed(run.checkpoints(), config.checkpoint.keep_last, config)?;
    let mut step = 0;
    if resume {
        step = resume_from(&checkpointer, &setup, &mut opt, &mut dino, device)?;
    }

    // 5. Steps: `accumulate` batches on every process, gradients, the logged numbers and DINO's
    // centre summed over them.
    let metrics_path = run.path.join("metrics.jsonl");
    let mut log = match main {
        true => Some(MetricsLog::open(&metrics_path, (step > 0).then_some(step))?),
        false => None,
    };
    let bar = run_log::progress("pretrain", total_steps, "steps")?;
    bar.set_position(step as u64);
    let mut last: Option<StepMetrics> = None;
    let mut collapsed: Option<String> = None;
    let mut checkpoint = checkpointer.newest_dir()?.unwrap_or_default();
    let mut micro: Vec<Vec<PretrainItem>> = Vec::new();
    while step < total_steps {
        let epoch = step / steps_per_epoch;
        let first_batch = (step % steps_per_epoch) * accumulate;
        let mut batches = setup.loader.epoch_from(epoch as u64, first_batch)?;
        let (mut read, step_at_start) = (0, step);
        loop {
            micro.clear();
            micro.extend(batches.by_ref().take(accumulate).map(|b| b.items));
            if micro.len() < accumulate {
                break; // the epoch's end (batches that make no whole step are left out)
            }
            read += micro.iter().map(Vec::len).sum::<usize>();
            let labels: Vec<BatchLabels> = micro.iter().map(|b| batch_labels(&setup, b)).collect();
            let step_counts =
                LabelCounts::sum(labels.iter().map(|l| l.counts)).over_world(&world)?;
            if step_counts.images < 2 {
                continue; // a step emptied by unreadable images, skipped by every process
            }
            let t_temp = sched.teacher_temp(config, step);
            let (lr, dino_step) = (sched.lr.at(step), (&dino, t_temp));
            let mut sum = StepSum::new(&dino.center)?;
            for (items, labels) in micro.iter().zip(&labels) {
                if items.is_empty() {
                    continue;
                }
                let weights = (gate_tasks.as_slice(), labels.counts.shares_of(&step_counts));
                let batch = (items.as_slice(), labels);
                let l = step_loss(&setup, batch, dino_step, weights, config, device)?;
                if !l.value.is_finite() {
                    ensure_finite_loss(step, lr, &l.terms()?)?;
                }
                sum.add(&opt, l)?;
            }
            let StepSum {
                mut grads,
                values,
                centre,
            } = sum.over_world(&world, &opt)?;
            dino.update_center(&centre)?;
            if step == 0 {
                check_gradients(student, heads, &grads, &used_tasks)?;
            }
            if step < sched.freeze_last_steps {
                for name in &last_layer {
                    grads.remove(name);
                }
            }
            let logging = (step + 1) % p.log_every.max(1) == 0 || step + 1 == total_steps;
            let diagnostics = match logging {
                true => gate_diagnostics(&student.vit, &gate_tasks, &gate_vars, &grads)?,
                false => None,
            };
            let stats = opt
                .step(&grads, lr, sched.wd.at(step))
                .with_context(|| format!("pre-training, step {step}"))?;
            teacher.update(student, heads, sched.momentum.at(step))?;
            step += 1;
            bar.inc(1);

            if logging {
                let record = step_record(config, &sched, step, t_temp, &values, stats.grad_norm)
                    .with_gates(&student.vit, diagnostics)?;
                if record.collapse.is_some() && collapsed.is_none() {
                    bar.suspend(|| println!("step {step}: {}", collapse_line(config, &values)));
                }
                collapsed = record.collapse.clone();
                bar.set_message(record.summary());
                if let Some(log) = log.as_mut() {
                    log.write(&record)?;
                }
                last = Some(record);
            }
            let saving = step % config.checkpoint.every.max(1) == 0 || step == total_steps;
            if let (true, Some(log)) = (saving, log.as_mut()) {
                log.flush()?;
                checkpoint = save_checkpoint(&checkpointer, step, &setup, &opt, &dino)?;
            }
        }
        let skipped = batches.skipped();
        check_epoch(config, &sched, epoch, (step_at_start, step), read, &skipped)?;
    }
    bar.finish();
    if let Some(log) = log.as_mut() {
        log.flush()?;
        // The checkpoints are written: a chart that fails to draw costs the chart, not the run.
        if let Err(e) = write_plots(&run.path, &log.path, &student.vit) {
            tracing::warn!("no curves.png / gates.png: {e:#}");
        }
    }
    Ok(PretrainOutcome {
        steps: step,
        checkpoint,
        last,
        collapse: collapsed,
    })
}

/// Writes the checkpoint of `step` (student, heads, EMA teacher, optimiser, DINO centre);
/// returns its folder.
fn save_checkpoint(
    checkpointer: &Checkpointer,
    step: usize,
    setup: &Setup,
    opt: &AdamW,
    dino: &DinoLoss,
) -> Result<PathBuf> {
    let progress = Progress {
        step,
        steps_per_epoch: setup.steps_per_epoch,
        images: setup.n_images,
    };
    let opt_state = opt.state_dict()?;
    let (student, heads, teacher) = (&setup.student, &setup.heads, &setup.teacher);
    checkpointer.save(step as u64, &progress, |staging| {
        state::write(
            staging,
            student,
            heads,
            teacher,
            opt_state,
            &dino.center,
            step,
        )
    })
}

/// AdamW over the student (its gate weights at `optim.gate_lr_scale`) and the heads: DINO's
/// projection head at the backbone's LR, the pseudo-label heads (part, attribute) at
/// `optim.head_lr_scale`. Also the gate weights, which the gate diagnostics read.
fn optimizer(
    config: &Config,
    student: &Backbone,
    heads: &Heads,
) -> Result<(AdamW, Vec<(String, Var)>)> {
    let o = &config.optim;
    let (dino_head, label_heads): (Vec<_>, Vec<_>) = heads
        .store
        .vars()
        .into_iter()
        .partition(|(name, _)| name.starts_with(DINO_HEAD));
    let (gates, mut backbone): (Vec<_>, Vec<_>) = student
        .store
        .vars()
        .into_iter()
        .partition(|(name, _)| is_gate_weight(name));
    backbone.extend(dino_head);
    let mut groups = backbone_and_head_groups(
        &backbone,
        &label_heads,
        student.vit.cfg.depth,
        1.0,
        o.head_lr_scale,
    );
    groups.extend(build_groups(&gates, 0, 1.0).into_iter().map(|mut g| {
        g.name = format!("gate_{}", g.name);
        g.lr_scale = o.gate_lr_scale;
        g
    }));
    Ok((AdamW::new(groups, o.adamw())?, gates))
}

/// Learning rate, weight decay and EMA momentum by step, and the steps of DINO's warm-ups.
struct Schedules {
    steps_per_epoch: usize,
    total_steps: usize,
    lr: CosineSchedule,
    wd: CosineSchedule,
    momentum: CosineSchedule,
    temp_warmup_steps: usize,
    /// DINO freezes its prototypes for these first steps.
    freeze_last_steps: usize,
}

impl Schedules {
    fn new(config: &Config, total_steps: usize, steps_per_epoch: usize) -> Self {
        let (o, d) = (&config.optim, &config.pretrain.dino);
        let constant_start = |base: f64, final_value: f64| CosineSchedule {
            base,
            final_value,
            total_steps,
            warmup_steps: 0,
            warmup_start: base,
        };
        Self {
            steps_per_epoch,
            total_steps,
            lr: CosineSchedule {
                base: o.lr,
                final_value: o.min_lr,
                total_steps,
                warmup_steps: o.warmup_steps.min(total_steps),
                warmup_start: 0.0,
            },
            wd: constant_start(o.weight_decay, o.weight_decay_end),
            momentum: constant_start(d.momentum, d.momentum_end),
            temp_warmup_steps: d.warmup_teacher_temp_epochs * steps_per_epoch,
            freeze_last_steps: d.freeze_last_layer_epochs * steps_per_epoch,
        }
    }

    fn teacher_temp(&self, config: &Config, step: usize) -> f64 {
        let d = &config.pretrain.dino;
        teacher_temperature(
            step,
            d.warmup_teacher_temp,
            d.teacher_temp,
            self.temp_warmup_steps,
        )
    }
}

/// The newest checkpoint's step, with the student, heads, teacher, optimiser and DINO centre
/// restored from it; 0 when the run has none yet. A checkpoint of other settings is refused.
fn resume_from(
    checkpointer: &Checkpointer,
    setup: &Setup,
    opt: &mut AdamW,
    dino: &mut DinoLoss,
    device: &Device,
) -> Result<usize> {
    let Some(saved) = checkpointer.latest::<Progress>()? else {
        println!(
            "--resume: no checkpoint in {} yet, starting at step 0",
            checkpointer.dir().display()
        );
        return Ok(0);
    };
    let (student, heads, teacher) = (&setup.student, &setup.heads, &setup.teacher);
    let layout = (setup.steps_per_epoch, setup.n_images);
    let (center, opt_state) =
        state::load(&saved.dir, &saved.progress, student, heads, teacher, layout)?;
    opt.load_state_dict(&opt_state)?;
    dino.center = center.to_device(device)?;
    println!(
        "resumed from {} (step {})",
        saved.dir.display(),
        saved.progress.step
    );
    Ok(saved.progress.step)
}

/// One batch's weighted total loss and its terms (unweighted).
pub(super) struct StepLoss {
    /// The weighted sum of the terms, each also weighted by the batch's share of the step.
    pub total: Tensor,
    /// The total, read once per batch.
    pub value: f64,
    pub shares: Shares,
    pub dino: DinoOutput,
    pub part: Option<f64>,
    pub attr: Option<f64>,
    pub gate_mi: Option<f64>,
}

impl StepLoss {
    /// The terms by name, to say which one diverged.
    fn terms(&self) -> Result<Vec<(&'static str, f64)>> {
        Ok([
            ("loss", Some(self.value)),
            ("ssl", Some(self.dino.loss.to_scalar::<f32>()? as f64)),
            ("part", self.part),
            ("attr", self.attr),
            ("gate MI", self.gate_mi),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect())
    }
}

/// DINO + part + attribute (+ gate MI) losses of a batch, weighted as `pretrain` says and each
/// by the batch's share of what it averages over in the whole step (`shares`).
fn step_loss(
    setup: &Setup,
    batch: (&[PretrainItem], &BatchLabels),
    (dino, teacher_temp): (&DinoLoss, f64),
    (gate_tasks, shares): (&[&str], Shares),
    config: &Config,
    device: &Device,
) -> Result<StepLoss> {
    let p = &config.pretrain;
    let l = config
        .run
        .precision
        .scope(|| task_losses(setup, batch, dino, teacher_temp, device))?;
    let mut total = (&l.dino.loss * (p.ssl_weight * shares.images))?;
    let (mut part, mut attr, mut gate_mi) = (None, None, None);
    if let Some(loss) = &l.part {
        part = Some(loss.to_scalar::<f32>()? as f64);
        total = (total + (loss * (p.part_weight * shares.part))?)?;
    }
    if let Some(loss) = &l.attr {
        attr = Some(loss.to_scalar::<f32>()? as f64);
        total = (total + (loss * (p.attr_weight * shares.attr))?)?;
    }
    if p.gate_mi_weight > 0.0 {
        if let Some(mi) = mi_loss(&setup.student.vit, gate_tasks)? {
            gate_mi = Some(mi.to_scalar::<f32>()? as f64);
            total = (total + (mi * (p.gate_mi_weight * shares.images))?)?;
        }
    }
    // One read of the total per batch; the terms only to name a divergence.
    let value = total.to_scalar::<f32>()? as f64;
    Ok(StepLoss {
        total,
        value,
        dino: l.dino,
        part,
        attr,
        gate_mi,
        shares,
    })
}

/// The metrics line of the step that just ended (`step` counts it), gates not yet read.
fn step_record(
    config: &Config,
    sched: &Schedules,
    step: usize,
    teacher_temp: f64,
    v: &StepValues,
    grad_norm: f64,
) -> StepMetrics {
    StepMetrics {
        step,
        epoch: (step - 1) / sched.steps_per_epoch + 1,
        lr: sched.lr.at(step - 1),
        weight_decay: sched.wd.at(step - 1),
        momentum: sched.momentum.at(step - 1),
        teacher_temp,
        loss: v.loss,
        loss_ssl: v.ssl,
        loss_part: v.part.mean(),
        loss_attr: v.attr.mean(),
        teacher_entropy: v.teacher_entropy,
        teacher_mean_entropy: v.teacher_mean_entropy,
        kl: v.kl,
        grad_norm,
        collapse: collapse(
            config.pretrain.dino.out_dim,
            v.teacher_entropy,
            v.teacher_mean_entropy,
        )
        .map(String::from),
        loss_gate_mi: v.gate_mi.mean(),
        gate_entropy: BTreeMap::new(),
        gate_mi: Vec::new(),
        gate_diagnostics: None,
        gates: GateTable::default(),
    }
}

/// What a collapsed teacher looks like, for the console.
fn collapse_line(config: &Config, v: &StepValues) -> String {
    let out_dim = config.pretrain.dino.out_dim;
    format!(
        "COLLAPSE — {} (teacher entropy {:.3} of max {:.3}, KL {:.4})",
        collapse(out_dim, v.teacher_entropy, v.teacher_mean_entropy).unwrap_or_default(),
        v.teacher_entropy,
        (out_dim as f64).ln(),
        v.kl
    )
}

impl StepMetrics {
    /// This line with the gates as they stand (their entropies, the task–expert information)
    /// and the diagnostics of the step's gradient.
    fn with_gates(self, vit: &Vit, diagnostics: Option<GateDiagnostics>) -> Result<Self> {
        let gates = gate_table(vit)?;
        Ok(Self {
            gate_entropy: gate_entropy(&gates),
            gate_mi: task_expert_mi(&gates),
            gate_diagnostics: diagnostics,
            gates,
            ..self
        })
    }

    /// The progress bar's message.
    fn summary(&self) -> String {
        format!(
            "loss {:.3} (ssl {:.3}{}{}) H_t {:.2}",
            self.loss,
            self.loss_ssl,
            self.loss_part
                .map_or(String::new(), |v| format!(", part {v:.3}")),
            self.loss_attr
                .map_or(String::new(), |v| format!(", attr {v:.3}")),
            self.teacher_entropy
        )
    }
}

/// After an epoch: it ran to its end, skipped no more unreadable images than allowed, and made
/// at least one step (an epoch that cannot make one batch would repeat for ever).
fn check_epoch(
    config: &Config,
    sched: &Schedules,
    epoch: usize,
    (step_at_start, step): (usize, usize),
    read: usize,
    skipped: &[Skipped],
) -> Result<()> {
    if step % sched.steps_per_epoch != 0 && step < sched.total_steps {
        bail!(
            "epoch {} ended early: the loader stopped (a worker failed)",
            epoch + 1
        );
    }
    check_skipped_in(
        &distributed::world(),
        &format!("pre-training epoch {}", epoch + 1),
        skipped,
        read,
        config.data.max_skipped_fraction,
    )?;
    if step == step_at_start {
        bail!(
            "pre-training epoch {}: no batch of at least 2 readable images ({read} read, {} \
             unreadable): nothing to train on",
            epoch + 1,
            skipped.len()
        );
    }
    Ok(())
}

/// PC-MoE's gate weights (W_g, W_c of every PC-MoE block), which `optim.gate_lr_scale` scales.
fn is_gate_weight(name: &str) -> bool {
    name.ends_with(".moe.gate.weight") || name.ends_with(".moe.channel_gate.weight")
}

/// The first step's gradient must reach every variable: an op that cuts the graph (DESIGN §3)
/// fails the run here instead of silently not training part of the model. Prompts of tasks no
/// loss uses (`part`/`attr` without pseudo-labels) are exempt.
fn check_gradients(
    student: &Backbone,
    heads: &Heads,
    grads: &BTreeMap<String, Tensor>,
    used: &[Option<&str>],
) -> Result<()> {
    let grad_of = |name: &str, _: &Var| grads.get(name).cloned();
    let mut problems = student.store.gradient_problems_by(grad_of)?;
    problems.extend(heads.store.gradient_problems_by(grad_of)?);
    problems.retain(|(name, _)| {
        name.strip_prefix("prompts.delta.")
            .is_none_or(|task| used.contains(&Some(task)))
    });
    if !problems.is_empty() {
        bail!(
            "the first step's gradient misses {} variables: {problems:?}",
            problems.len()
        );
    }
    Ok(())
}

/// `curves.png` (losses, teacher entropy, KL against logged steps) and `gates.png`.
fn write_plots(dir: &Path, metrics: &Path, vit: &Vit) -> Result<()> {
    let text = std::fs::read_to_string(metrics).unwrap_or_default();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let series = |key: &'static str| Series {
        name: key,
        points: rows
            .iter()
            .filter_map(|r| Some((r["step"].as_f64()?, r[key].as_f64().unwrap_or(f64::NAN))))
            .collect(),
    };
    let all = [
        "loss",
        "loss_ssl",
        "loss_part",
        "loss_attr",
        "teacher_entropy",
        "kl",
    ];
    let plotted: Vec<Series> = all
        .iter()
        .map(|k| series(k))
        .filter(|s| s.points.iter().any(|p| p.1.is_finite()))
        .collect();
    if !plotted.is_empty() {
        write_curves(&dir.join("curves.png"), "step", &plotted)?;
    }
    write_gate_heatmap(&dir.join("gates.png"), &gate_table(vit)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `optim.gate_lr_scale` reaches both gate weights of every PC-MoE block, and nothing else.
    #[test]
    fn gate_weights_are_found_by_name() {
        let mut config = Config::default();
        config.model.preset = crate::model::config::Preset::Nano;
        let bb = Backbone::fresh(&config, &Device::Cpu, String::new()).unwrap();
        let gates: Vec<String> = bb
            .store
            .vars()
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| is_gate_weight(n))
            .collect();
        assert_eq!(gates.len(), 2 * bb.vit.cfg.depth, "{gates:?}");
    }
}
