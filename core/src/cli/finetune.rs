//! `clasp finetune --task NAME [--backbone CKPT] [--data DIR]`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::GlobalArgs;
use crate::config::Config;
use crate::device::parse_device;
use crate::finetune::evaluate::format_metrics;
use crate::finetune::finetune;
use crate::plugin_host::loader::find_task;
use crate::run_dir::RunDir;
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
        Ok(config)
    }
}

#[derive(Args, Debug)]
pub struct FinetuneArgs {
    #[command(flatten)]
    pub run: TaskRunArgs,
    /// Same as --set finetune.epochs=N.
    #[arg(long)]
    pub epochs: Option<usize>,
}

pub fn run(g: &GlobalArgs, args: FinetuneArgs) -> Result<()> {
    let epochs = args.epochs.map(|e| format!("finetune.epochs={e}"));
    let config = args.run.load(g, "finetune", epochs.into_iter().collect())?;
    let args = args.run;
    let plugin = find_task(&config.plugins, &args.task)?;
    let device = parse_device(&config.run.device)?;
    let run = RunDir::create(&config)?;
    println!(
        "fine-tuning `{}` ({} {}) → {}",
        args.task,
        plugin.path.display(),
        &plugin.sha256[..12],
        run.path.display()
    );
    let primary = plugin.spec.primary_metric.to_string();
    let out = finetune(&config, plugin, args.backbone.as_deref(), &run, &device)?;
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
