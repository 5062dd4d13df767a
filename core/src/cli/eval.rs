//! `clasp eval --checkpoint TASK_CKPT [--data DIR] [--split test]`: a task checkpoint's metrics on
//! a split, through the plugin its manifest names.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::GlobalArgs;
use crate::device::parse_device;
use crate::finetune::{evaluate, TaskModel};
use crate::plugin_host::task_head::dataset;

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Task checkpoint directory (written by `clasp finetune`).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Dataset root in the task's format (default: `finetune.data` of the config).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Split to evaluate.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Also write the metrics as JSON to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(g: &GlobalArgs, args: EvalArgs) -> Result<()> {
    let config = g.load()?;
    let device = parse_device(&config.run.device)?;
    let mut model = TaskModel::load(&args.checkpoint, &config.plugins, &device)?;
    model.fold_for_inference(config.model.moe.fold_threshold)?;
    let root = match &args.data {
        Some(d) => d.clone(),
        None if !config.finetune.data.is_empty() => PathBuf::from(&config.finetune.data),
        None => bail!("no dataset: pass --data DIR (or set finetune.data)"),
    };
    let records = dataset(&model.head.plugin, &model.head.config, &root, &args.split)?;
    if records.is_empty() {
        bail!("{}: split `{}` is empty", root.display(), args.split);
    }
    let n = records.len();
    let eval = evaluate(&model, records, &config.finetune, &device)?;
    println!(
        "{} on {} ({}, {} samples, {} skipped as unreadable): {}",
        model.task(),
        root.display(),
        args.split,
        n,
        eval.skipped,
        eval.summary()
    );
    if let Some(out) = &args.out {
        let json = serde_json::json!({
            "task": model.task(),
            "checkpoint": args.checkpoint,
            "data": root,
            "split": args.split,
            "samples": n,
            "skipped": eval.skipped,
            "metrics": eval.metrics.iter().map(|(k, v)| (k.clone(), (*v).into())).collect::<serde_json::Map<_, _>>(),
        });
        std::fs::write(out, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}
