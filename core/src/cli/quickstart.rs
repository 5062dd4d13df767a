//! `clasp quickstart [--fast]`: the main job on built-in data (see `crate::quickstart`).

use anyhow::{bail, Result};
use clap::Args;

use super::GlobalArgs;
use crate::device::parse_device;
use crate::quickstart::budget::{Budget, Tier};
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
    // A rerun reuses the finished stages: the quickstart continues its own folder.
    let run = RunDir::create(&config, Existing::Continue)?;
    println!(
        "quickstart, {tier:?} tier → {} (finished stages are reused on a rerun)",
        run.path.display()
    );
    let report = Quickstart::new(
        run.path,
        &config,
        Budget::for_tier(tier),
        args.train_teacher,
        g.set.clone(),
        device,
    )
    .run()?;
    println!("report: {}", report.display());
    Ok(())
}
