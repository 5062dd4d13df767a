//! The pre-training loop, top to bottom: data and pseudo-labels → student, heads and EMA teacher
//! → AdamW → (resume) → steps of DINO + part + attribute losses → checkpoints, metrics, plots.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::dino_head::DinoHead;
use super::dino_loss::{collapse, teacher_temperature, DinoLoss};
use super::gates::{
    gate_diagnostics, gate_entropy, gate_table, mi_loss, task_expert_mi, write_gate_heatmap,
    GateDiagnostics, GateTable,
};
use super::losses::task_losses;
use super::model::{Heads, DINO_HEAD};
use super::setup::Setup;
use super::state::{self, Progress};
use crate::backbone::Backbone;
use crate::checkpoint::store::{latest, save_step};
use crate::config::Config;
use crate::finetune::curves::{write_curves, Series};
use crate::finetune::data::check_skipped;
use crate::model::Vit;
use crate::optim::groups::build_groups;
use crate::optim::{backbone_and_head_groups, ensure_finite_loss, AdamW, CosineSchedule};
use crate::run_dir::RunDir;

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

    // 1.–2. Images with pseudo-labels, the loader, student, heads and EMA teacher.
    let setup = Setup::new(config, device, run.config_hash.clone())?;
    let (student, heads, teacher) = (&setup.student, &setup.heads, &setup.teacher);
    let (steps_per_epoch, n_images) = (setup.steps_per_epoch, setup.n_images);
    let total_steps = p.epochs * steps_per_epoch;
    let tasks = setup.tasks;

    // 3. AdamW over the student and its heads; schedules by step.
    let o = &config.optim;
    // DINO trains its projection head with the backbone's LR; the pseudo-label heads (part,
    // attribute) take `optim.head_lr_scale`.
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
    let gate_vars = gates.clone();
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
    let mut opt = AdamW::new(groups, o.adamw())?;
    let gate_tasks: Vec<&str> = [tasks.ssl, tasks.part.flatten(), tasks.attr.flatten()]
        .into_iter()
        .flatten()
        .collect();
    let lr = CosineSchedule {
        base: o.lr,
        final_value: o.min_lr,
        total_steps,
        warmup_steps: o.warmup_steps.min(total_steps),
        warmup_start: 0.0,
    };
    let wd = CosineSchedule {
        base: o.weight_decay,
        final_value: o.weight_decay_end,
        total_steps,
        warmup_steps: 0,
        warmup_start: o.weight_decay,
    };
    let momentum = CosineSchedule {
        base: p.dino.momentum,
        final_value: p.dino.momentum_end,
        total_steps,
        warmup_steps: 0,
        warmup_start: p.dino.momentum,
    };
    let temp_warmup_steps = p.dino.warmup_teacher_temp_epochs * steps_per_epoch;
    let freeze_last_steps = p.dino.freeze_last_layer_epochs * steps_per_epoch;
    let last_layer: Vec<_> = DinoHead::last_layer_names()
        .iter()
        .filter_map(|n| heads.store.get(&format!("{DINO_HEAD}.{n}")))
        .collect();
    let mut dino = DinoLoss::new(
        Tensor::zeros((1, p.dino.out_dim), candle_core::DType::F32, device)?,
        p.dino.student_temp,
        p.dino.center_momentum,
    );

    // 4. Resume from the newest checkpoint of this run.
    let ckpt_dir = run.checkpoints();
    let mut step = 0;
    if resume {
        match latest(&ckpt_dir)? {
            Some(dir) => {
                let saved = crate::checkpoint::Manifest::read(&dir)?;
                if saved.config_hash != run.config_hash {
                    bail!(
                        "{} was written with another configuration (config hash {} ≠ {}): resume \
                         with the same settings (the run's {})",
                        dir.display(),
                        &saved.config_hash[..12.min(saved.config_hash.len())],
                        &run.config_hash[..12],
                        crate::run_dir::RESOLVED_CONFIG
                    );
                }
                let (progress, opt_state) =
                    state::load(&dir, student, heads, teacher, steps_per_epoch, n_images)?;
                opt.load_state_dict(&opt_state)?;
                dino.center = progress.center.to_device(device)?;
                step = progress.step;
                println!("resumed from {} (step {step})", dir.display());
            }
            None => println!(
                "--resume: no checkpoint in {} yet, starting at step 0",
                ckpt_dir.display()
            ),
        }
    }

    // 5. Steps.
    let metrics_path = run.path.join("metrics.jsonl");
    if step > 0 {
        keep_metrics_up_to(&metrics_path, step)?;
    }
    let mut metrics_file = std::fs::OpenOptions::new()
        .create(true)
        .append(step > 0)
        .write(true)
        .truncate(step == 0)
        .open(&metrics_path)
        .with_context(|| format!("opening {}", metrics_path.display()))?;
    let bar = ProgressBar::new(total_steps as u64).with_style(ProgressStyle::with_template(
        "pretrain {bar:30} {pos}/{len} steps [{elapsed_precise}<{eta_precise}] {msg}",
    )?);
    bar.set_position(step as u64);
    let mut last: Option<StepMetrics> = None;
    let mut collapsed: Option<String> = None;
    let mut checkpoint = latest(&ckpt_dir)?.unwrap_or_default();
    while step < total_steps {
        let epoch = step / steps_per_epoch;
        let mut batches = setup
            .loader
            .epoch_from(epoch as u64, step % steps_per_epoch)?;
        let (mut read, step_at_start) = (0, step);
        for batch in batches.by_ref() {
            read += batch.items.len();
            if batch.items.len() < 2 {
                continue; // a batch emptied by unreadable images
            }
            let items = &batch.items;

            let t_temp = teacher_temperature(
                step,
                p.dino.warmup_teacher_temp,
                p.dino.teacher_temp,
                temp_warmup_steps,
            );
            let l = task_losses(&setup, items, &mut dino, t_temp, device)?;
            let d = &l.dino;
            let mut loss = (&d.loss * p.ssl_weight)?;
            let (mut loss_part, mut loss_attr) = (None, None);
            if let Some(part) = &l.part {
                loss_part = Some(part.to_scalar::<f32>()? as f64);
                loss = (loss + (part * p.part_weight)?)?;
            }
            if let Some(attr) = &l.attr {
                loss_attr = Some(attr.to_scalar::<f32>()? as f64);
                loss = (loss + (attr * p.attr_weight)?)?;
            }
            let mut loss_gate_mi = None;
            if p.gate_mi_weight > 0.0 {
                if let Some(mi) = mi_loss(&student.vit, &gate_tasks)? {
                    loss_gate_mi = Some(mi.to_scalar::<f32>()? as f64);
                    loss = (loss + (mi * p.gate_mi_weight)?)?;
                }
            }

            // One read of the total per step; the terms only to name a divergence.
            let loss_value = loss.to_scalar::<f32>()? as f64;
            if !loss_value.is_finite() {
                let terms: Vec<(&str, f64)> = [
                    ("loss", Some(loss_value)),
                    ("ssl", Some(d.loss.to_scalar::<f32>()? as f64)),
                    ("part", loss_part),
                    ("attr", loss_attr),
                    ("gate MI", loss_gate_mi),
                ]
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect();
                ensure_finite_loss(step, lr.at(step), &terms)?;
            }
            let mut grads = loss.backward()?;
            if step == 0 {
                check_gradients(
                    student,
                    heads,
                    &grads,
                    &[tasks.ssl, tasks.part.flatten(), tasks.attr.flatten()],
                )?;
            }
            if step < freeze_last_steps {
                for var in &last_layer {
                    grads.remove(var.as_tensor());
                }
            }
            let logging = (step + 1) % p.log_every.max(1) == 0 || step + 1 == total_steps;
            let diagnostics = if logging {
                gate_diagnostics(&student.vit, &gate_tasks, &gate_vars, &grads)?
            } else {
                None
            };
            let stats = opt
                .step(&grads, lr.at(step), wd.at(step))
                .with_context(|| format!("pre-training, step {step}"))?;
            let m = momentum.at(step);
            teacher.update(student, heads, m)?;
            step += 1;
            bar.inc(1);

            let kind = collapse(p.dino.out_dim, d.teacher_entropy, d.teacher_mean_entropy);
            if step % p.log_every.max(1) == 0 || step == total_steps {
                let record = StepMetrics {
                    step,
                    epoch: (step - 1) / steps_per_epoch + 1,
                    lr: lr.at(step - 1),
                    weight_decay: wd.at(step - 1),
                    momentum: m,
                    teacher_temp: t_temp,
                    loss: loss_value,
                    loss_ssl: d.loss.to_scalar::<f32>()? as f64,
                    loss_part,
                    loss_attr,
                    teacher_entropy: d.teacher_entropy,
                    teacher_mean_entropy: d.teacher_mean_entropy,
                    kl: d.kl,
                    grad_norm: stats.grad_norm,
                    collapse: kind.map(String::from),
                    loss_gate_mi,
                    gate_entropy: BTreeMap::new(),
                    gate_mi: Vec::new(),
                    gate_diagnostics: diagnostics,
                    gates: gate_table(&student.vit)?,
                };
                let record = StepMetrics {
                    gate_entropy: gate_entropy(&record.gates),
                    gate_mi: task_expert_mi(&record.gates),
                    ..record
                };
                if record.collapse.is_some() && collapsed.is_none() {
                    bar.suspend(|| {
                        println!(
                            "step {step}: COLLAPSE — {} (teacher entropy {:.3} of max {:.3}, KL {:.4})",
                            kind.unwrap_or_default(),
                            d.teacher_entropy,
                            (p.dino.out_dim as f64).ln(),
                            d.kl
                        )
                    });
                }
                collapsed = record.collapse.clone();
                bar.set_message(format!(
                    "loss {:.3} (ssl {:.3}{}{}) H_t {:.2}",
                    record.loss,
                    record.loss_ssl,
                    record
                        .loss_part
                        .map_or(String::new(), |v| format!(", part {v:.3}")),
                    record
                        .loss_attr
                        .map_or(String::new(), |v| format!(", attr {v:.3}")),
                    record.teacher_entropy
                ));
                writeln!(metrics_file, "{}", serde_json::to_string(&record)?)?;
                last = Some(record);
            }
            if step % config.checkpoint.every.max(1) == 0 || step == total_steps {
                metrics_file.flush()?;
                let progress = Progress {
                    step,
                    steps_per_epoch,
                    images: n_images,
                    center: dino.center.clone(),
                };
                let opt_state = opt.state_dict()?;
                checkpoint =
                    save_step(&ckpt_dir, step as u64, config.checkpoint.keep_last, |dir| {
                        state::save(dir, student, heads, teacher, opt_state, &progress)
                    })?;
            }
        }
        if step % steps_per_epoch != 0 && step < total_steps {
            bail!(
                "epoch {} ended early: the loader stopped (a worker failed)",
                epoch + 1
            );
        }
        check_skipped(
            &format!("pre-training epoch {}", epoch + 1),
            &batches.skipped(),
            read,
            config.data.max_skipped_fraction,
        )?;
        // An epoch that could not make one batch would repeat for ever.
        if step == step_at_start {
            bail!(
                "pre-training epoch {}: no batch of at least 2 readable images ({read} read, {} \
                 unreadable): nothing to train on",
                epoch + 1,
                batches.skipped().len()
            );
        }
    }
    bar.finish();
    metrics_file.flush()?;
    write_plots(&run.path, &metrics_path, &student.vit)?;
    Ok(PretrainOutcome {
        steps: step,
        checkpoint,
        last,
        collapse: collapsed,
    })
}

/// PC-MoE's gate weights (W_g, W_c of every PC-MoE block), which `optim.gate_lr_scale` scales.
fn is_gate_weight(name: &str) -> bool {
    name.ends_with(".moe.gate.weight") || name.ends_with(".moe.channel_gate.weight")
}

/// Drops the rows a killed run logged after the checkpoint it resumes from: the resumed run
/// logs those steps again.
fn keep_metrics_up_to(path: &Path, step: usize) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s as usize <= step)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(path, kept).with_context(|| format!("rewriting {}", path.display()))
}

/// The first step's gradient must reach every variable: an op that cuts the graph (DESIGN §3)
/// fails the run here instead of silently not training part of the model. Prompts of tasks no
/// loss uses (`part`/`attr` without pseudo-labels) are exempt.
fn check_gradients(
    student: &Backbone,
    heads: &Heads,
    grads: &candle_core::backprop::GradStore,
    used: &[Option<&str>],
) -> Result<()> {
    let mut problems = student.store.gradient_problems(grads)?;
    problems.extend(heads.store.gradient_problems(grads)?);
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
        values: rows
            .iter()
            .map(|r| r[key].as_f64().unwrap_or(f64::NAN))
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
        .filter(|s| s.values.iter().any(|v| v.is_finite()))
        .collect();
    if !plotted.is_empty() {
        write_curves(&dir.join("curves.png"), &plotted)?;
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
