//! `clasp quickstart [--fast]`: the main job on built-in data (see `crate::quickstart`).

use anyhow::{bail, Result};
use clap::Args;

use super::GlobalArgs;
use crate::device::parse_device;
use crate::quickstart::budget::Budget;
use crate::quickstart::Quickstart;
use crate::run_dir::RunDir;

#[derive(Args, Debug)]
pub struct QuickstartArgs {
    /// The short variant used by the end-to-end test (a few minutes at most).
    #[arg(long)]
    pub fast: bool,
}

pub fn run(g: &GlobalArgs, args: QuickstartArgs) -> Result<()> {
    if g.config.is_some() {
        bail!(
            "quickstart writes its own stage configs (runs/quickstart/configs/); change them with \
             --set KEY=VALUE, which applies to every stage"
        );
    }
    let mut sources = g.sources();
    sources
        .overrides
        .insert(0, "run.name=\"quickstart\"".to_string());
    let config = sources.load()?;
    let device = parse_device(&config.run.device)?;
    let run = RunDir::create(&config)?;
    let budget = if args.fast {
        Budget::fast()
    } else {
        Budget::default_run()
    };
    println!(
        "quickstart{} → {} (finished stages are reused on a rerun)",
        if args.fast { " --fast" } else { "" },
        run.path.display()
    );
    let report =
        Quickstart::new(run.path, &config, budget, args.fast, g.set.clone(), device).run()?;
    println!("report: {}", report.display());
    Ok(())
}
