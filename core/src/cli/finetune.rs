//! `clasp finetune --task NAME [--backbone CKPT] [--data DIR]`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;

use super::GlobalArgs;
use crate::checkpoint::manifest::Manifest;
use crate::config::{Config, ConfigSources};
use crate::device::device_for_rank;
use crate::distributed;
use crate::finetune::evaluate::format_metrics;
use crate::finetune::{finetune_for, FinetuneRun};
use crate::plugin_host::loader::find_task;
use crate::run_dir::{Existing, RunDir};
use crate::scoring::blind::blind_line;

/// What `finetune` and `probe` both take.
#[derive(Args, Debug)]
pub struct TaskRunArgs {
    /// Task name (a plugin's spec name).
    #[arg(long)]
    pub task: String,
    /// Backbone checkpoint (a randomly initialised backbone without it).
    #[arg(long)]
    pub backbone: Option<PathBuf>,
    /// Dataset root (same as --set finetune.data=DIR).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Start afresh in a run folder that holds an earlier run, moving that run aside to
    /// `<name>.replaced-<time>` (never deleted); without it such a folder is refused.
    #[arg(long)]
    pub overwrite: bool,
}

#[derive(Args, Debug)]
pub struct FinetuneArgs {
    #[command(flatten)]
    pub run: TaskRunArgs,
    /// Same as --set finetune.epochs=N.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Continue after the last finished epoch of the run (its newest checkpoint).
    #[arg(long, conflicts_with = "overwrite")]
    pub resume: bool,
    /// Stop after this many epochs; `--resume` continues from there.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_epochs: Option<u32>,
}

impl TaskRunArgs {
    /// The layered config with `--data` and `extra` applied after the `--set`s; the run is named
    /// `{stage}-{task}` unless `run.name` is set.
    pub fn load(&self, g: &GlobalArgs, stage: &str, extra: Vec<String>) -> Result<Config> {
        let mut sources = g.sources();
        if let Some(d) = &self.data {
            sources
                .overrides
                .push(format!("finetune.data=\"{}\"", d.display()));
        }
        sources.overrides.extend(extra);
        let mut config = sources.load()?;
        if config.run.name == "default" {
            config.run.name = format!("{stage}-{}", self.task);
        }
        if let Some(backbone) = &self.backbone {
            adopt_checkpoint_model(&mut config, &sources, backbone)?;
        }
        Ok(config)
    }
}

/// A backbone checkpoint fixes the model: its preset and input size replace the defaults in the
/// config (so the resolved config records what runs), and a differing value the user set is an
/// error that names both — it could not take effect.
fn adopt_checkpoint_model(
    config: &mut Config,
    sources: &ConfigSources,
    backbone: &Path,
) -> Result<()> {
    let m = Manifest::read(backbone)?;
    // Each as the config and the checkpoint spell it (Debug: strings quoted, arrays bracketed).
    let fixed = [
        (
            "model.preset",
            format!("{:?}", config.model.preset.name()),
            format!("{:?}", m.preset),
        ),
        (
            "model.img_size",
            format!("{:?}", config.model.img_size),
            format!("{:?}", m.img_size),
        ),
        (
            "model.patch_size",
            config.model.patch_size.to_string(),
            m.model.patch_size.to_string(),
        ),
        (
            "model.pre_norm",
            config.model.pre_norm.to_string(),
            m.model.pre_norm.to_string(),
        ),
        (
            "model.activation",
            format!("{:?}", config.model.activation.name()),
            format!("{:?}", m.model.activation.name()),
        ),
        (
            "model.norm_eps",
            format!("{:e}", config.model.norm_eps),
            format!("{:e}", m.model.norm_eps),
        ),
    ];
    for (key, given, kept) in fixed {
        if given == kept {
            continue;
        }
        if let Some(source) = sources.given(key)? {
            bail!(
                "config key `{key}` = {given} [from {source}] cannot take effect: the backbone \
                 checkpoint {} was built with {kept}; drop the setting or pass a checkpoint \
                 built with it",
                backbone.display()
            );
        }
    }
    config.model.preset = m.preset.parse()?;
    config.model.img_size = m.img_size;
    config.model.patch_size = m.model.patch_size;
    config.model.pre_norm = m.model.pre_norm;
    config.model.activation = m.model.activation;
    config.model.norm_eps = m.model.norm_eps;
    Ok(())
}

pub fn run(g: &GlobalArgs, args: FinetuneArgs) -> Result<()> {
    let epochs = args.epochs.map(|e| format!("finetune.epochs={e}"));
    let config = args.run.load(g, "finetune", epochs.into_iter().collect())?;
    let how = FinetuneRun {
        resume: args.resume,
        max_epochs: args.max_epochs.map(|m| m as usize),
    };
    let args = args.run;
    let plugin = find_task(&config.plugins, &args.task)?;
    let device = device_for_rank(&config.run.device, &crate::distributed::world())?;
    // With NCCL, the ranks' GPUs sum the gradients among themselves.
    crate::distributed::world().join_gpus(&device)?;
    let world = distributed::world();
    let existing = Existing::from_flags(how.resume, args.overwrite);
    let run = RunDir::create_in(&config, existing, &world)?;
    if world.size > 1 {
        println!("rank {} of {} processes", world.rank, world.size);
    }
    println!(
        "fine-tuning `{}` ({} {}) → {}",
        args.task,
        plugin.path.display(),
        &plugin.sha256[..12],
        run.path.display()
    );
    let primary = plugin.spec.primary_metric.to_string();
    let Some(out) = finetune_for(
        &config,
        plugin,
        args.backbone.as_deref(),
        &run,
        &device,
        how,
    )?
    else {
        return Ok(());
    };
    let chosen = match &out.selected.validation {
        Some((metric, v)) => format!("the best on validation ({metric} {v:.4})"),
        None => "the last (no validation value to choose by)".into(),
    };
    println!(
        "selected epoch {}, {chosen}\ntest, read once: {}\n{}\ntask checkpoint: {}\nmetrics: {}",
        out.selected.epoch,
        format_metrics(&out.test.metrics),
        blind_line(&out.blind, &primary),
        out.checkpoint.display(),
        run.path.join("metrics.jsonl").display()
    );
    Ok(())
}
