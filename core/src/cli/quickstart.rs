//! `clasp quickstart [--fast]`: the main job on built-in data (see `crate::quickstart`).

use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::GlobalArgs;
use crate::device::parse_device;
use crate::quickstart::budget::{Budget, Tier};
use crate::quickstart::stage_pool::{self, Parallelism, StagePool};
use crate::quickstart::Quickstart;
use crate::run_dir::{Existing, RunDir};

#[derive(Args, Debug)]
pub struct QuickstartArgs {
    /// How much work: `quick` (≤ 15 minutes on 2 cores), `standard` (≤ 90 minutes: more
    /// pre-training, several seeds), `fast` (seconds: the end-to-end test's).
    #[arg(long, value_enum, default_value = "quick")]
    pub budget: Tier,
    /// Same as `--budget fast`.
    #[arg(long, conflicts_with = "budget")]
    pub fast: bool,
    /// Train the CLIP teacher on captioned synthetic people inside the run (a few minutes)
    /// instead of using the shipped one.
    #[arg(long)]
    pub train_teacher: bool,
    /// How many stages after the labels (pre-training runs, probes, fine-tuning runs) run at
    /// once, each in a process of its own with an equal share of the threads. Default: 2 on a
    /// CPU with at least 2 threads, else 1; 1 on a GPU. 1 runs them one after the other in this
    /// process.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,
    /// Run only the stage of this name (how a quickstart running several at a time starts each).
    #[arg(long, hide = true, value_name = "NAME", requires = "parent")]
    pub stage: Option<String>,
    /// The process id of the quickstart that started this stage (it stops when that one is gone).
    #[arg(long, hide = true, value_name = "PID", requires = "stage")]
    pub parent: Option<u32>,
}

pub fn run(g: &GlobalArgs, args: QuickstartArgs) -> Result<()> {
    if g.config.is_some() {
        bail!(
            "quickstart writes its own stage configs (runs/quickstart/configs/); change them with \
             --set KEY=VALUE, which applies to every stage"
        );
    }
    let tier = if args.fast { Tier::Fast } else { args.budget };
    let mut sources = g.sources();
    sources
        .overrides
        .insert(0, "run.name=\"quickstart\"".to_string());
    let config = sources.load()?;
    let device = parse_device(&config.run.device)?;
    let budget = Budget::for_tier(tier);
    if let (Some(stage), Some(parent)) = (&args.stage, args.parent) {
        // A child of a quickstart, which holds the folder's lock.
        stage_pool::exit_with_parent(parent);
        let root = Path::new(&config.run.dir).join(&config.run.name);
        let q = Quickstart::new(
            root,
            &config,
            budget,
            args.train_teacher,
            g.set.clone(),
            device,
        );
        return q.run_stage(stage);
    }
    // A rerun reuses the finished stages: the quickstart continues its own folder.
    let run = RunDir::create(&config, Existing::Continue)?;
    println!(
        "quickstart, {tier:?} tier → {} (finished stages are reused on a rerun)",
        run.path.display()
    );
    let cores = candle_core::utils::get_num_threads();
    let jobs = match args.jobs {
        Some(j) => j as usize,
        None if device.is_cpu() && cores >= 2 => 2,
        None => 1,
    };
    let mut q = Quickstart::new(
        run.path.clone(),
        &config,
        budget,
        args.train_teacher,
        g.set.clone(),
        device,
    );
    if jobs > 1 {
        q.stage_pool = Some(StagePool {
            parallelism: Parallelism::new(jobs, cores),
            exe: std::env::current_exe().context("locating the clasp binary")?,
            args: std::env::args_os().skip(1).collect(),
            log_dir: run.path.join("logs"),
        });
    }
    let report = q.run()?;
    println!("report: {}", report.display());
    Ok(())
}
