//! `clasp finetune --task NAME [--backbone CKPT] [--data DIR]`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::GlobalArgs;
use crate::device::parse_device;
use crate::finetune::evaluate::format_metrics;
use crate::finetune::finetune;
use crate::plugin_host::loader::find_task;
use crate::run_dir::RunDir;
use crate::scoring::blind::blind_line;

#[derive(Args, Debug)]
pub struct FinetuneArgs {
    /// Task name (a plugin's spec name).
    #[arg(long)]
    pub task: String,
    /// Backbone checkpoint to start from (random initialisation without it).
    #[arg(long)]
    pub backbone: Option<PathBuf>,
    /// Dataset root (same as --set finetune.data=DIR).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Same as --set finetune.epochs=N.
    #[arg(long)]
    pub epochs: Option<usize>,
}

pub fn run(g: &GlobalArgs, args: FinetuneArgs) -> Result<()> {
    let mut sources = g.sources();
    if let Some(d) = &args.data {
        sources
            .overrides
            .push(format!("finetune.data=\"{}\"", d.display()));
    }
    if let Some(e) = args.epochs {
        sources.overrides.push(format!("finetune.epochs={e}"));
    }
    let mut config = sources.load()?;
    if config.run.name == "default" {
        config.run.name = format!("finetune-{}", args.task);
    }
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
