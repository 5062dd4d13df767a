//! `clasp analyze grad-conflict --checkpoint C [--checkpoint C2 …]`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use super::GlobalArgs;
use crate::config::ConfigSources;
use crate::device::parse_device;
use crate::pretrain::grad_conflict::{analyze, write_conflict_chart, ConflictTable};
use crate::run_dir::RESOLVED_CONFIG;

#[derive(Args, Debug)]
pub struct GradConflictArgs {
    /// A `clasp pretrain` checkpoint (`runs/<name>/checkpoints/step_…`); repeat to compare runs,
    /// e.g. one trained with PC-MoE and one without.
    #[arg(long, required = true)]
    pub checkpoint: Vec<PathBuf>,
    /// Batches of the run's data to average over.
    #[arg(long, default_value_t = 4)]
    pub batches: usize,
    /// Where `grad_conflict.json` and `grad_conflict.png` go (default: the first checkpoint's
    /// run directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The run directory of a checkpoint: `<run>/checkpoints/step_…`.
fn run_dir(checkpoint: &Path) -> PathBuf {
    checkpoint
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

pub fn grad_conflict(g: &GlobalArgs, args: GradConflictArgs) -> Result<()> {
    let mut tables: Vec<ConflictTable> = Vec::new();
    for ckpt in &args.checkpoint {
        // The run's own resolved config describes its data and model, unless --config is given.
        let file = g
            .config
            .clone()
            .unwrap_or_else(|| run_dir(ckpt).join(RESOLVED_CONFIG));
        let config = ConfigSources {
            file: Some(file.clone()),
            overrides: g.set.clone(),
            use_env: true,
            ..Default::default()
        }
        .load()
        .with_context(|| format!("the config of {} ({})", ckpt.display(), file.display()))?;
        let device = parse_device(&config.run.device)?;
        let table = analyze(&config, ckpt, args.batches, &device)?;
        println!("{}", table.render());
        tables.push(table);
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| run_dir(&args.checkpoint[0]));
    std::fs::create_dir_all(&out)?;
    let json = out.join("grad_conflict.json");
    std::fs::write(&json, serde_json::to_string_pretty(&tables)?)
        .with_context(|| format!("writing {}", json.display()))?;
    let png = out.join("grad_conflict.png");
    write_conflict_chart(&png, &tables)?;
    println!("written {} and {}", json.display(), png.display());
    Ok(())
}
