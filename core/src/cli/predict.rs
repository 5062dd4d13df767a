//! `clasp predict --checkpoint TASK_CKPT IMAGE_OR_FOLDER...`: the plugin's reading of each image,
//! printed, in `predictions.jsonl`, and drawn (when the plugin draws) as PNG files in the run
//! directory. With `--gallery DIR` (retrieval tasks), each image is a query and its picture is
//! the rank list of the gallery's closest images.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use clap::Args;
use clasp_sdk::abi::Record;

use super::GlobalArgs;
use crate::data::images::{list_images, load_normalized};
use crate::device::parse_device;
use crate::finetune::TaskModel;
use crate::run_dir::{Existing, RunDir};

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
    /// Folder of gallery images: draw each query's rank list against them (reid).
    #[arg(long)]
    pub gallery: Option<PathBuf>,
    /// Write into a run folder that holds earlier predictions, moving them aside to
    /// `<name>.replaced-<time>` (never deleted); without it such a folder is refused.
    #[arg(long)]
    pub overwrite: bool,
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

/// The decoded prediction of each readable image (its `image` set to the file), and how many
/// could not be read (skipped with a warning).
fn predict_files(
    model: &TaskModel,
    files: &[PathBuf],
    batch: usize,
    device: &Device,
) -> Result<(Vec<(PathBuf, Record)>, usize)> {
    let [h, w] = model.img_size();
    let (mut out, mut skipped) = (Vec::new(), 0usize);
    for chunk in files.chunks(batch.max(1)) {
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
        let x = Tensor::from_vec(pixels, (kept.len(), 3, h, w), device)?;
        let predictions = model.head.decode(&model.forward(&x, false)?)?;
        for (path, mut pred) in kept.into_iter().zip(predictions) {
            pred.image = path.display().to_string().into();
            out.push((path.clone(), pred));
        }
    }
    Ok((out, skipped))
}

pub fn run(g: &GlobalArgs, args: PredictArgs) -> Result<()> {
    let mut config = g.load()?;
    let device = parse_device(&config.run.device)?;
    let mut model = TaskModel::load(&args.checkpoint, &config.plugins, &device)?
        .with_precision(config.run.precision);
    model.fold_for_inference(config.model.moe.fold_threshold)?;
    if config.run.name == "default" {
        config.run.name = format!("predict-{}", model.task());
    }
    let run = RunDir::create(&config, Existing::from_flags(false, args.overwrite))?;
    let pictures = run.path.join("pictures");
    std::fs::create_dir_all(&pictures)
        .with_context(|| format!("creating {}", pictures.display()))?;
    let jsonl = run.path.join("predictions.jsonl");
    let mut out =
        std::fs::File::create(&jsonl).with_context(|| format!("writing {}", jsonl.display()))?;

    let files = expand(&args.images)?;
    let gallery = match &args.gallery {
        Some(dir) => {
            let (g, skipped) = predict_files(&model, &list_images(dir)?, args.batch, &device)?;
            if g.is_empty() {
                bail!(
                    "{}: none of the gallery images could be read",
                    dir.display()
                );
            }
            println!("gallery: {} images ({skipped} unreadable)", g.len());
            Some(g.into_iter().map(|(_, r)| r).collect::<Vec<Record>>())
        }
        None => None,
    };
    let (predicted, skipped) = predict_files(&model, &files, args.batch, &device)?;
    let (mut done, mut drawn) = (0usize, 0usize);
    for (path, pred) in &predicted {
        println!("{}: {}", path.display(), model.head.describe(pred)?);
        let json = serde_json::json!({
            "image": path,
            "values": pred.values.as_slice(),
            "shape": pred.shape.as_slice(),
            "ints": pred.ints.as_slice(),
        });
        writeln!(out, "{json}")?;
        let picture = picture_path(&pictures, done, path);
        let was_drawn = match &gallery {
            Some(g) => {
                if !model.head.visualize_ranking(path, pred, g, &picture)? {
                    bail!(
                        "--gallery: plugin `{}` draws no rank lists",
                        model.head.plugin.name()
                    );
                }
                true
            }
            None => model.head.visualize(path, pred, &picture)?,
        };
        drawn += was_drawn as usize;
        done += 1;
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
