//! `clasp teacher train --data SYNTH --out DIR`: trains a small CLIP on synthetic people and their
//! captions (settings under `[teacher]`) and writes it as a Hugging Face CLIP folder.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use super::GlobalArgs;
use crate::device::parse_device;
use crate::teacher::train::{train_teacher, TeacherRun};

#[derive(Args, Debug)]
pub struct TeacherTrainArgs {
    /// Synthetic dataset root with `captions.jsonl` (overrides `teacher.data`).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Output folder (config.json, model.safetensors, tokenizer.json, preprocessor_config.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Continue an interrupted run from its last finished epoch (a `step_…/` checkpoint in
    /// `.<out>.resume/` beside the output folder); the settings must be the same.
    #[arg(long)]
    pub resume: bool,
    /// Stop after this many epochs; `--resume` continues from there.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_epochs: Option<u32>,
    /// Move an existing teacher at --out aside (`<out>.replaced-<time>`) and write anew.
    #[arg(long)]
    pub overwrite: bool,
}

pub fn run(g: &GlobalArgs, args: TeacherTrainArgs) -> Result<()> {
    let config = g.load()?;
    super::warn_unused_precision(&config, "teacher train");
    let mut t = config.teacher.clone();
    if let Some(d) = &args.data {
        t.data = Some(d.clone());
    }
    if t.data.is_none() {
        bail!("no training data: pass --data DIR (a `clasp synth` output) or set `teacher.data`");
    }
    super::output::prepare_output(&args.out, args.overwrite)?;
    let device = parse_device(&config.run.device)?;
    let run = TeacherRun {
        resume: args.resume,
        max_epochs: args.max_epochs.map(|m| m as usize),
        max_skipped_fraction: config.data.max_skipped_fraction,
    };
    let report = train_teacher(&t, &args.out, &device, config.run.seed, run)?;
    if !report.complete {
        return Ok(());
    }
    let last = report.epochs.last();
    println!(
        "teacher written to {} in {:.0} s: held-out image→text top-1 {:.3}, top-5 {:.3} \
         (chance {:.3}) over {} images",
        report.out.display(),
        report.seconds,
        last.map_or(0.0, |e| e.top1),
        last.map_or(0.0, |e| e.top5),
        1.0 / report.candidates.max(1) as f64,
        report.heldout_images
    );
    Ok(())
}
