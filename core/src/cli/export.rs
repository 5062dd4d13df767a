//! `clasp export --to timm`.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use super::GlobalArgs;
use crate::checkpoint;
use crate::device::parse_device;
use crate::export::timm::to_timm;

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Target ecosystem (only `timm` for now).
    #[arg(long, default_value = "timm")]
    pub to: String,
    /// Output safetensors; constructor kwargs go to `<out>.json`.
    #[arg(long)]
    pub out: PathBuf,
    /// Task to fold prompts and PC-MoE gates for.
    #[arg(long)]
    pub task: Option<String>,
    /// Move existing files at --out (and beside it) aside (`.replaced-<time>`) and write anew.
    #[arg(long)]
    pub overwrite: bool,
}

pub fn run(g: &GlobalArgs, args: ExportArgs) -> Result<()> {
    if args.to != "timm" {
        bail!(
            "export target `{}` is not supported (supported: timm)",
            args.to
        );
    }
    let config = g.load()?;
    let kw_path = PathBuf::from(format!("{}.json", args.out.display()));
    for path in [&args.out, &kw_path] {
        super::output::prepare_output(path, args.overwrite)?;
    }
    let device = parse_device(&config.run.device)?;
    let backbone = checkpoint::load(&args.checkpoint, &device)?;
    let vit = backbone.for_inference(args.task.as_deref(), config.model.moe.fold_threshold)?;
    let (sd, kwargs) = to_timm(&vit)?;
    let sd: std::collections::HashMap<String, candle_core::Tensor> = sd
        .into_iter()
        .map(|(k, v)| Ok((k, v.to_device(&candle_core::Device::Cpu)?)))
        .collect::<Result<_>>()?;
    crate::checkpoint::tensor_file::save_tensors(&sd, &args.out)?;
    std::fs::write(&kw_path, serde_json::to_string_pretty(&kwargs)?)?;
    println!(
        "exported {} tensors → {} (timm kwargs in {}):\n  VisionTransformer(**json.load(open('{}')))",
        sd.len(),
        args.out.display(),
        kw_path.display(),
        kw_path.display()
    );
    // timm's VisionTransformer takes no epsilon argument; its layer norms use 1e-6.
    if vit.cfg.norm_eps != 1e-6 {
        println!(
            "  the layer norms' epsilon is {:e}: add norm_layer=functools.partial(torch.nn.LayerNorm, eps={:e})",
            vit.cfg.norm_eps, vit.cfg.norm_eps
        );
    }
    Ok(())
}
