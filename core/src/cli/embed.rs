//! `clasp embed`: features of every image in a folder — the backbone's CLS and mean patch token
//! for a backbone checkpoint; every named output of the task head at inference for a task
//! checkpoint (reid: `feature`, the retrieval feature the evaluation ranks).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::GlobalArgs;
use crate::checkpoint;
use crate::data::images::{list_images, load_normalized};
use crate::device::parse_device;
use crate::finetune::TaskModel;

#[derive(Args, Debug)]
pub struct EmbedArgs {
    /// Backbone checkpoint directory, or a task checkpoint (from `clasp finetune`).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Folder of images.
    #[arg(long)]
    pub images: PathBuf,
    /// Output safetensors (`cls` and `patch_mean`, or for a task checkpoint each head output
    /// under the name the plugin gives it, e.g. reid's `feature`); the image list goes to
    /// `<out>.images.txt`.
    #[arg(long)]
    pub out: PathBuf,
    /// Task whose prompt (and folded gates) to use, for models with prompts.
    #[arg(long)]
    pub task: Option<String>,
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Move existing files at --out (and beside it) aside (`.replaced-<time>`) and write anew.
    #[arg(long)]
    pub overwrite: bool,
}

pub fn run(g: &GlobalArgs, args: EmbedArgs) -> Result<()> {
    let config = g.load()?;
    let list_path = PathBuf::from(format!("{}.images.txt", args.out.display()));
    for path in [&args.out, &list_path] {
        super::output::prepare_output(path, args.overwrite)?;
    }
    let device = parse_device(&config.run.device)?;
    let backbone = checkpoint::load(&args.checkpoint, &device)?;
    let threshold = config.model.moe.fold_threshold;
    let task_model = match backbone.manifest.plugin {
        Some(_) => {
            let mut m = TaskModel::load(&args.checkpoint, &config.plugins, &device)?
                .with_precision(config.run.precision);
            m.fold_for_inference(threshold)?;
            Some(m)
        }
        None => None,
    };
    // A task checkpoint runs through its own task's prompt; a backbone needs `--task` to pick one.
    let vit = match task_model {
        Some(_) => None,
        None => Some(backbone.for_inference(args.task.as_deref(), threshold)?),
    };
    let [h, w] = backbone.manifest.img_size;
    let files = list_images(&args.images)?;
    if files.is_empty() {
        bail!(
            "no images (jpg, jpeg, png, bmp, webp) in {}",
            args.images.display()
        );
    }
    let bar = ProgressBar::new(files.len() as u64).with_style(ProgressStyle::with_template(
        "embed {bar:40} {pos}/{len} [{elapsed_precise}<{eta_precise}]",
    )?);
    let (mut cls, mut pooled) = (Vec::new(), Vec::new());
    let mut head: BTreeMap<String, Vec<Tensor>> = BTreeMap::new();
    let (mut kept, mut skipped) = (Vec::new(), 0usize);
    for chunk in files.chunks(args.batch.max(1)) {
        let mut pixels = Vec::with_capacity(chunk.len() * 3 * h * w);
        let mut n = 0;
        for path in chunk {
            match load_normalized(path, h, w) {
                Ok(px) => {
                    pixels.extend(px);
                    kept.push(path.clone());
                    n += 1;
                }
                Err(e) => {
                    tracing::warn!("skipping {}: {e:#}", path.display());
                    skipped += 1;
                }
            }
            bar.inc(1);
        }
        if n == 0 {
            continue;
        }
        let x = Tensor::from_vec(pixels, (n, 3, h, w), &device)?;
        if let Some(m) = &task_model {
            for (name, t) in m.forward(&x, false)?.0 {
                let t = t.to_device(&candle_core::Device::Cpu)?;
                head.entry(name).or_default().push(t);
            }
            continue;
        }
        let vit = vit
            .as_ref()
            .expect("a backbone checkpoint has its folded model");
        let out = config
            .run
            .precision
            .scope(|| vit.forward(&x, args.task.as_deref()))?;
        cls.push(out.cls.to_device(&candle_core::Device::Cpu)?);
        pooled.push(out.pooled_patches()?.to_device(&candle_core::Device::Cpu)?);
    }
    bar.finish_and_clear();
    if kept.is_empty() {
        bail!(
            "none of the {} images in {} could be read",
            files.len(),
            args.images.display()
        );
    }
    let tensors: HashMap<String, Tensor> = if task_model.is_some() {
        head.into_iter()
            .map(|(name, parts)| Ok((name, Tensor::cat(&parts, 0)?)))
            .collect::<Result<_>>()?
    } else {
        HashMap::from([
            ("cls".to_string(), Tensor::cat(&cls, 0)?),
            ("patch_mean".to_string(), Tensor::cat(&pooled, 0)?),
        ])
    };
    crate::checkpoint::tensor_file::save_tensors(&tensors, &args.out)?;
    let list: String = kept.iter().map(|p| format!("{}\n", p.display())).collect();
    std::fs::write(&list_path, list).with_context(|| format!("writing {}", list_path.display()))?;
    println!(
        "embedded {} images ({} skipped as unreadable) → {} and {}",
        kept.len(),
        skipped,
        args.out.display(),
        list_path.display()
    );
    Ok(())
}
