//! `clasp init --preset P --out C`: a backbone checkpoint with random weights.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::GlobalArgs;
use crate::backbone::Backbone;
use crate::checkpoint;
use crate::config::to_toml;
use crate::device::parse_device;
use crate::run_dir::config_hash;

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Model preset (nano, tiny, small, base); same as --set model.preset=P.
    #[arg(long)]
    pub preset: Option<String>,
    /// Checkpoint directory to create.
    #[arg(long)]
    pub out: PathBuf,
    /// Move an existing checkpoint at --out aside (`<out>.replaced-<time>`) and write anew.
    #[arg(long)]
    pub overwrite: bool,
}

pub fn run(g: &GlobalArgs, args: InitArgs) -> Result<()> {
    let mut sources = g.sources();
    if let Some(p) = &args.preset {
        sources.overrides.push(format!("model.preset={p}"));
    }
    let config = sources.load()?;
    super::output::prepare_output(&args.out, args.overwrite)?;
    let device = parse_device(&config.run.device)?;
    let bb = Backbone::fresh(&config, &device, config_hash(&to_toml(&config)?))?;
    let path = checkpoint::save(&args.out, &bb.vit, &bb.store, None, &bb.manifest)?;
    println!(
        "wrote {} ({} preset, {} parameters, tasks {:?})",
        path.display(),
        config.model.preset,
        bb.store.num_params(),
        bb.manifest.tasks
    );
    Ok(())
}
