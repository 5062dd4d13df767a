//! `clasp init --preset P --out C [--from-timm FILE | --from-clip DIR]`: a backbone checkpoint
//! with random weights, or starting from a timm ViT's or a CLIP vision tower's.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::GlobalArgs;
use crate::backbone::Backbone;
use crate::checkpoint;
use crate::config::to_toml;
use crate::device::parse_device;
use crate::import::clip::{load_clip, model_overrides};
use crate::import::timm::load_timm;
use crate::run_dir::config_hash;
use crate::teacher::clip_config::ClipConfig;

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Model preset (nano, tiny, small, base); same as --set model.preset=P.
    #[arg(long, conflicts_with = "from_clip")]
    pub preset: Option<String>,
    /// Checkpoint directory to create.
    #[arg(long)]
    pub out: PathBuf,
    /// Move an existing checkpoint at --out aside (`<out>.replaced-<time>`) and write anew.
    #[arg(long)]
    pub overwrite: bool,
    /// Start from a timm VisionTransformer state dict (safetensors) instead of random weights:
    /// position embeddings resampled to `model.img_size`, PC-MoE experts split from the dense
    /// MLP; what the file lacks (prompts) or the model lacks (a classifier) is listed.
    #[arg(long, value_name = "FILE", conflicts_with = "from_clip")]
    pub from_timm: Option<PathBuf>,
    /// Start from the vision tower of a Hugging Face CLIP folder (`config.json`,
    /// `model.safetensors`): the model's preset, patch size, activation, layer-norm epsilon and
    /// pre-norm are taken from the folder; the rest is as for --from-timm.
    #[arg(long, value_name = "DIR")]
    pub from_clip: Option<PathBuf>,
}

pub fn run(g: &GlobalArgs, args: InitArgs) -> Result<()> {
    let mut sources = g.sources();
    if let Some(p) = &args.preset {
        sources.overrides.push(format!("model.preset={p}"));
    }
    if let Some(dir) = &args.from_clip {
        let clip = ClipConfig::read(&dir.join("config.json"))?;
        let taken = model_overrides(&clip)?;
        println!("model settings from the CLIP folder: {}", taken.join(" "));
        sources.overrides.extend(taken);
    }
    let config = sources.load()?;
    super::output::prepare_output(&args.out, args.overwrite)?;
    let device = parse_device(&config.run.device)?;
    let bb = Backbone::fresh(&config, &device, config_hash(&to_toml(&config)?))?;
    let imported = match (&args.from_timm, &args.from_clip) {
        (Some(file), _) => {
            let sd = candle_core::safetensors::load(file, &device)
                .with_context(|| format!("reading the timm state dict {}", file.display()))?;
            let sd = sd.into_iter().collect();
            let report = load_timm(&bb.vit, &bb.store, &sd)
                .with_context(|| format!("initialising from {}", file.display()))?;
            Some((report, file))
        }
        (None, Some(dir)) => {
            let report = load_clip(&bb.vit, &bb.store, dir)
                .with_context(|| format!("initialising from {}", dir.display()))?;
            Some((report, dir))
        }
        (None, None) => None,
    };
    if let Some((report, file)) = imported {
        println!("{} tensors from {}", report.loaded, file.display());
        if let Some((from, to)) = report.resampled {
            println!("position embeddings resampled from a {from:?} grid to {to:?}");
        }
        if !report.fresh.is_empty() {
            println!("kept fresh (not in the file): {}", report.fresh.join(", "));
        }
        if !report.unused.is_empty() {
            println!(
                "not used (no counterpart here): {}",
                report.unused.join(", ")
            );
        }
    }
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
