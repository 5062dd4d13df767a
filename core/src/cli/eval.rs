//! `clasp eval --checkpoint TASK_CKPT [--data DIR] [--split test]`: a task checkpoint's metrics on
//! a split, through the plugin its manifest names.
//!
//! `clasp eval --task NAME --input NAME=PATH …`: metrics of results another system wrote, read
//! and scored by the task's plugin from the files it declares — how users compare toolboxes on
//! equal terms.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use clasp_sdk::Split;

use super::GlobalArgs;
use crate::config::Config;
use crate::device::parse_device;
use crate::finetune::{evaluate, TaskModel};
use crate::plugin_host::loader::find_task;
use crate::plugin_host::task_config::resolve;
use crate::plugin_host::task_head::{dataset, evaluate_files};

/// `NAME=PATH` of `--input`.
fn parse_input(s: &str) -> std::result::Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => {
            Ok((name.to_string(), PathBuf::from(path)))
        }
        _ => Err(format!("`{s}` is not NAME=PATH")),
    }
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Task checkpoint directory (written by `clasp finetune`).
    #[arg(long, required_unless_present = "task", conflicts_with = "task")]
    pub checkpoint: Option<PathBuf>,
    /// Score result files written by another system with this task's plugin instead.
    #[arg(long)]
    pub task: Option<String>,
    /// A result file for `--task`, as NAME=PATH (repeatable): the names the task's plugin
    /// declares (`clasp plugins inspect NAME` lists them), e.g. pose `results=R.json gt=G.json`.
    #[arg(long = "input", value_name = "NAME=PATH", requires = "task", value_parser = parse_input)]
    pub inputs: Vec<(String, PathBuf)>,
    /// Dataset root in the task's format (default: `finetune.data` of the config).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Split to evaluate (train, val or test).
    #[arg(long, default_value = "test")]
    pub split: Split,
    /// Also write the metrics as JSON to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Move an existing file at --out aside (`.replaced-<time>`) and write anew.
    #[arg(long)]
    pub overwrite: bool,
}

pub fn run(g: &GlobalArgs, args: EvalArgs) -> Result<()> {
    let config = g.load()?;
    let Some(checkpoint) = args.checkpoint.clone() else {
        return run_on_files(&config, &args);
    };
    let device = parse_device(&config.run.device)?;
    let mut model = TaskModel::load(&checkpoint, &config.plugins, &device)?
        .with_precision(config.run.precision);
    model.fold_for_inference(config.model.moe.fold_threshold)?;
    let root = match &args.data {
        Some(d) => d.clone(),
        None => match &config.finetune.data {
            Some(d) => d.clone(),
            None => bail!("no dataset: pass --data DIR (or set finetune.data)"),
        },
    };
    let records = dataset(&model.head.plugin, &model.head.config, &root, args.split)?;
    if records.is_empty() {
        bail!("{}: split `{}` is empty", root.display(), args.split);
    }
    let n = records.len();
    let eval = evaluate(
        &model,
        records,
        &config.finetune,
        config.data.max_skipped_fraction,
        &device,
    )?;
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
            "checkpoint": checkpoint,
            "data": root,
            "split": args.split.name(),
            "samples": n,
            "skipped": eval.skipped,
            "metrics": eval.metrics.iter().map(|(k, v)| (k.clone(), (*v).into())).collect::<serde_json::Map<_, _>>(),
        });
        write_json(out, args.overwrite, &json)?;
    }
    Ok(())
}

fn write_json(out: &Path, overwrite: bool, json: &serde_json::Value) -> Result<()> {
    super::output::prepare_output(out, overwrite)?;
    std::fs::write(out, serde_json::to_string_pretty(json)?)
        .with_context(|| format!("writing {}", out.display()))
}

/// `--task NAME` with result files: the plugin reads and scores them.
fn run_on_files(config: &Config, args: &EvalArgs) -> Result<()> {
    let task = args
        .task
        .as_deref()
        .context("--task or --checkpoint is required")?;
    let plugin = find_task(&config.plugins, task)?;
    let declared: Vec<String> = plugin
        .spec
        .result_files
        .iter()
        .map(|f| format!("{} ({})", f.name, f.help))
        .collect();
    if declared.is_empty() {
        bail!("task `{task}` scores no result files of other systems");
    }
    let inputs = &args.inputs;
    if inputs.is_empty() {
        bail!(
            "--task {task}: give the files to score as --input NAME=PATH; it reads: {}",
            declared.join("; ")
        );
    }
    for (i, (name, _)) in inputs.iter().enumerate() {
        if inputs[..i].iter().any(|(n, _)| n == name) {
            bail!("--input {name}=… is given twice");
        }
        if !plugin
            .spec
            .result_files
            .iter()
            .any(|f| f.name == name.as_str())
        {
            bail!(
                "--input {name}=…: task `{task}` reads no file called `{name}`; it reads: {}",
                declared.join("; ")
            );
        }
    }
    let task_config = resolve(&plugin, &config.task)?;
    let metrics = evaluate_files(&plugin, &task_config, inputs)?;
    let summary: Vec<String> = metrics
        .iter()
        .map(|m| format!("{} {:.4}", m.name, m.value))
        .collect();
    let names: Vec<String> = inputs
        .iter()
        .map(|(k, p)| format!("{k} {}", p.display()))
        .collect();
    println!("{task} on {}: {}", names.join(", "), summary.join(", "));
    if let Some(out) = &args.out {
        let json = serde_json::json!({
            "task": task,
            "inputs": inputs.iter().map(|(k, p)| (k.clone(), p.display().to_string().into())).collect::<serde_json::Map<_, _>>(),
            "metrics": metrics.iter().map(|m| (m.name.to_string(), m.value.into())).collect::<serde_json::Map<_, _>>(),
        });
        write_json(out, args.overwrite, &json)?;
    }
    Ok(())
}
