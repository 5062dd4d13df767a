//! `clasp predict --checkpoint TASK_CKPT IMAGE_OR_FOLDER...`: the plugin's reading of each image,
//! printed, in `predictions.jsonl`, and drawn (when the plugin draws) as PNG files in the run
//! directory.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use clap::Args;

use super::GlobalArgs;
use crate::data::images::{list_images, load_normalized};
use crate::device::parse_device;
use crate::finetune::TaskModel;
use crate::run_dir::RunDir;

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// Task checkpoint directory (written by `clasp finetune`).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Image files, or folders whose images are all predicted.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
}

fn expand(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            out.extend(list_images(p)?);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            bail!("{} is neither an image file nor a folder", p.display());
        }
    }
    Ok(out)
}

/// `pictures/0007_name.png`: numbered so equal file names from different folders do not clash.
fn picture_path(dir: &Path, index: usize, image: &Path) -> PathBuf {
    let stem = image
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    dir.join(format!("{index:04}_{stem}.png"))
}

pub fn run(g: &GlobalArgs, args: PredictArgs) -> Result<()> {
    let mut config = g.load()?;
    let device = parse_device(&config.run.device)?;
    let mut model = TaskModel::load(&args.checkpoint, &config.plugins, &device)?;
    model.fold_for_inference(config.model.moe.fold_threshold)?;
    if config.run.name == "default" {
        config.run.name = format!("predict-{}", model.task());
    }
    let run = RunDir::create(&config)?;
    let pictures = run.path.join("pictures");
    std::fs::create_dir_all(&pictures)
        .with_context(|| format!("creating {}", pictures.display()))?;
    let jsonl = run.path.join("predictions.jsonl");
    let mut out =
        std::fs::File::create(&jsonl).with_context(|| format!("writing {}", jsonl.display()))?;

    let files = expand(&args.images)?;
    let [h, w] = model.img_size();
    let (mut done, mut skipped, mut drawn) = (0usize, 0usize, 0usize);
    for chunk in files.chunks(args.batch.max(1)) {
        let mut pixels = Vec::new();
        let mut kept = Vec::new();
        for path in chunk {
            match load_normalized(path, h, w) {
                Ok(px) => {
                    pixels.extend(px);
                    kept.push(path);
                }
                Err(e) => {
                    tracing::warn!("skipping {}: {e:#}", path.display());
                    skipped += 1;
                }
            }
        }
        if kept.is_empty() {
            continue;
        }
        let x = Tensor::from_vec(pixels, (kept.len(), 3, h, w), &device)?;
        let predictions = model.head.decode(&model.forward(&x, false)?)?;
        for (path, pred) in kept.into_iter().zip(predictions) {
            println!("{}: {}", path.display(), model.head.describe(&pred)?);
            let json = serde_json::json!({
                "image": path,
                "values": pred.values.as_slice(),
                "ints": pred.ints.as_slice(),
            });
            writeln!(out, "{json}")?;
            if model
                .head
                .visualize(path, &pred, &picture_path(&pictures, done, path))?
            {
                drawn += 1;
            }
            done += 1;
        }
    }
    if done == 0 {
        bail!("none of the {} images could be read", files.len());
    }
    println!(
        "{done} predicted ({skipped} skipped as unreadable) → {}; {drawn} pictures in {}",
        jsonl.display(),
        pictures.display()
    );
    Ok(())
}
