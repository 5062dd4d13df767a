//! `clasp synth`: synthetic people in the real dataset formats, and a preview contact sheet.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::GlobalArgs;
use crate::data::synth::identity::Identity;
use crate::data::synth::preview::contact_sheet;
use crate::data::synth::rng_for;
use crate::data::synth::scene::{render, Camera};

#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Output directory (dataset root).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, default_value_t = 100)]
    pub identities: u32,
    #[arg(long, default_value_t = 8)]
    pub images_per_id: u32,
    #[arg(long, default_value_t = 6)]
    pub cameras: u32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Image height and width.
    #[arg(long, num_args = 2, default_values_t = [256, 128], value_names = ["H", "W"])]
    pub size: Vec<usize>,
    /// Write a contact sheet (image | labels + skeleton) of the first identities to this PNG.
    #[arg(long)]
    pub preview: Option<PathBuf>,
}

pub fn run(_g: &GlobalArgs, args: SynthArgs) -> Result<()> {
    let (h, w) = (args.size[0], args.size[1]);
    if let Some(path) = &args.preview {
        let cameras: Vec<Camera> = (1..=args.cameras)
            .map(|c| Camera::sample(c, &mut rng_for(args.seed, &[1, c as u64])))
            .collect();
        let mut samples = Vec::new();
        for pid in 1..=24u32 {
            let who = Identity::sample(pid, &mut rng_for(args.seed, &[2, pid as u64]));
            let cam = &cameras[(pid as usize) % cameras.len()];
            samples.push(render(&who, cam, w, h, true, &mut rng_for(args.seed, &[3, pid as u64, 0])));
        }
        contact_sheet(&samples, 6)
            .save(path)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote preview {}", path.display());
    }
    Ok(())
}
