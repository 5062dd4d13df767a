//! `clasp synth`: synthetic people in the real dataset formats, and a preview contact sheet.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::GlobalArgs;
use crate::data::synth::dataset::{
    cameras, clear_previous, generate, plan, render_job, SynthOptions,
};
use crate::data::synth::preview::contact_sheet;

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
    #[arg(long, default_value_t = 90)]
    pub jpeg_quality: u8,
    /// Worker threads (default: all cores). Output does not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Write a contact sheet (image | part labels + skeleton) of the first 24 images to this PNG.
    #[arg(long)]
    pub preview: Option<PathBuf>,
    /// Replace the complete synthetic dataset already in --out (one with its synth.json; a
    /// folder holding anything else is still refused); without it a non-empty --out is refused.
    #[arg(long)]
    pub overwrite: bool,
}

pub fn run(_g: &GlobalArgs, args: SynthArgs) -> Result<()> {
    if args.out.is_none() && args.preview.is_none() {
        bail!("nothing to do: pass --out DIR (the dataset) and/or --preview FILE.png");
    }
    if args.cameras < 2 || args.identities < 2 || args.images_per_id < 1 {
        bail!("need at least 2 cameras, 2 identities and 1 image per identity");
    }
    if args.images_per_id == 1 {
        println!(
            "note: one image per person (as PA-100K): the reid folders hold no queries, only a \
             gallery; the attribute, parsing and pose files are complete"
        );
    }
    let opts = SynthOptions {
        out: args.out.clone().unwrap_or_default(),
        identities: args.identities,
        images_per_id: args.images_per_id,
        cameras: args.cameras,
        seed: args.seed,
        height: args.size[0],
        width: args.size[1],
        jpeg_quality: args.jpeg_quality,
        threads: args
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
    };
    if let Some(path) = &args.preview {
        let cams = cameras(&opts);
        // One image of each of the first identities, as written to the dataset.
        let samples: Vec<_> = plan(&opts)
            .iter()
            .filter(|j| j.shot == 0)
            .take(24)
            .map(|j| render_job(&opts, &cams, j))
            .collect();
        contact_sheet(&samples, 6)
            .save(path)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote preview {}", path.display());
    }
    if let Some(out) = &args.out {
        let non_empty = std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some());
        if non_empty && !args.overwrite {
            bail!(
                "{} is not empty: pass --overwrite to replace the synthetic dataset in it, or \
                 choose another --out",
                out.display()
            );
        }
        // Only a complete `clasp synth` output is ours to replace; anything else (an interrupted
        // render included) might hold files of the user's.
        if non_empty && !out.join("synth.json").is_file() {
            bail!(
                "{} is not a complete synthetic dataset (no synth.json): --overwrite replaces only \
                 what `clasp synth` finished writing; remove the folder yourself or choose another \
                 --out",
                out.display()
            );
        }
        clear_previous(out)?;
        let total = plan(&opts).len() as u64;
        let bar = ProgressBar::new(total).with_style(ProgressStyle::with_template(
            "synth {bar:40} {pos}/{len} [{elapsed_precise}<{eta_precise}] {per_sec}",
        )?);
        let s = generate(&opts, &|n| bar.inc(n))?;
        bar.finish_and_clear();
        println!(
            "wrote {} images to {} in {:.1} s ({:.0} images/s on {} threads)",
            s.images,
            opts.out.display(),
            s.seconds,
            s.images as f64 / s.seconds,
            opts.threads
        );
        println!(
            "  identities: {} train ({} images), {} val ({} images, under reid/val/), {} test \
             ({} query, {} gallery); {} distractors/junk · parsing, pose and attributes list \
             every train image and one image per val/test person · captions.jsonl",
            s.train_ids,
            s.train_images,
            s.val_ids,
            s.val_images,
            s.test_ids,
            s.query,
            s.gallery,
            s.distractors
        );
        println!(
            "  LIP classes never rendered: {}; PA-100K attributes not rendered: {}",
            s.lip_classes_not_rendered.join(", "),
            if s.attributes_not_rendered.is_empty() {
                "none (all 26 rendered)".to_string()
            } else {
                s.attributes_not_rendered.join(", ")
            }
        );
    }
    Ok(())
}
