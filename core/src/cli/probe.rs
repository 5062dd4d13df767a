//! `clasp probe --task NAME [--backbone CKPT] [--data DIR]`: a frozen backbone's features scored
//! through the task plugin's head trained on them alone (settings under `[probe]`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::GlobalArgs;
use crate::device::parse_device;
use crate::plugin_host::loader::find_task;
use crate::probe::probe;
use crate::run_dir::RunDir;
use crate::scoring::blind::blind_line;

#[derive(Args, Debug)]
pub struct ProbeArgs {
    /// Task name (a plugin's spec name).
    #[arg(long)]
    pub task: String,
    /// Backbone checkpoint whose features are probed (a random backbone without it).
    #[arg(long)]
    pub backbone: Option<PathBuf>,
    /// Dataset root (same as --set finetune.data=DIR).
    #[arg(long)]
    pub data: Option<PathBuf>,
}

pub fn run(g: &GlobalArgs, args: ProbeArgs) -> Result<()> {
    let mut sources = g.sources();
    if let Some(d) = &args.data {
        sources
            .overrides
            .push(format!("finetune.data=\"{}\"", d.display()));
    }
    let mut config = sources.load()?;
    if config.run.name == "default" {
        config.run.name = format!("probe-{}", args.task);
    }
    let plugin = find_task(&config.plugins, &args.task)?;
    let device = parse_device(&config.run.device)?;
    let run = RunDir::create(&config)?;
    let out = probe(&config, plugin, args.backbone.as_deref(), &run, &device)?;
    let values: Vec<String> = out
        .seeds
        .iter()
        .map(|s| format!("{:.4}", s.test.metric(&out.primary).unwrap_or(f64::NAN)))
        .collect();
    println!(
        "probe `{}`: test {} per seed {} (features {:.0} s, heads {:.0} s)\n{}\n→ {}",
        out.task,
        out.primary,
        values.join(", "),
        out.feature_seconds,
        out.head_seconds,
        blind_line(&out.blind, &out.primary),
        run.path.join(crate::probe::PROBE_FILE).display()
    );
    Ok(())
}
