//! `clasp teacher embed --teacher DIR (--images DIR | --text "…" …) --out F.safetensors`: CLIP
//! image and text embeddings (projected, not normalised, as transformers' `get_image_features` /
//! `get_text_features`) — for zero-shot use and for checking against other CLIP implementations.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use clap::Args;

use super::GlobalArgs;
use crate::data::images::list_images;
use crate::device::parse_device;
use crate::teacher::clip::Clip;
use crate::teacher::preprocess::ClipPreprocess;
use crate::teacher::tokenizer::ClipTokenizer;

#[derive(Args, Debug)]
pub struct TeacherEmbedArgs {
    /// CLIP folder in Hugging Face layout (config.json, model.safetensors, tokenizer.json,
    /// optionally preprocessor_config.json).
    #[arg(long)]
    pub teacher: PathBuf,
    /// Folder of images to embed (`image_embeds`; their list goes to `<out>.images.txt`).
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// Sentences to embed (`text_embeds`, in the order given).
    #[arg(long)]
    pub text: Vec<String>,
    /// Output safetensors file.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
}

pub fn run(g: &GlobalArgs, args: TeacherEmbedArgs) -> Result<()> {
    if args.images.is_none() && args.text.is_empty() {
        bail!("nothing to embed: pass --images DIR and/or --text \"…\"");
    }
    let config = g.load()?;
    super::warn_unused_precision(&config, "teacher embed");
    let device = parse_device(&config.run.device)?;
    let clip = Clip::load(&args.teacher, &device)?;
    let mut tensors = std::collections::HashMap::new();
    if let Some(dir) = &args.images {
        let prep = ClipPreprocess::from_dir(&args.teacher)?;
        let files = list_images(dir)?;
        let [h, w] = prep.crop;
        let (mut embeds, mut kept, mut skipped) = (Vec::new(), Vec::new(), 0usize);
        for chunk in files.chunks(args.batch.max(1)) {
            let mut pixels = Vec::new();
            let mut n = 0;
            for path in chunk {
                match crate::data::images::open_image(path) {
                    Ok(img) => {
                        pixels.extend(prep.pixels(&img.to_rgb8()));
                        kept.push(path.clone());
                        n += 1;
                    }
                    Err(e) => {
                        tracing::warn!("skipping an image: {e:#}");
                        skipped += 1;
                    }
                }
            }
            if n > 0 {
                let x = Tensor::from_vec(pixels, (n, 3, h, w), &device)?;
                embeds.push(
                    clip.image_embeds(&x)?
                        .to_device(&candle_core::Device::Cpu)?,
                );
            }
        }
        if kept.is_empty() {
            bail!(
                "none of the {} images in {} could be read",
                files.len(),
                dir.display()
            );
        }
        tensors.insert("image_embeds".to_string(), Tensor::cat(&embeds, 0)?);
        let list_path = PathBuf::from(format!("{}.images.txt", args.out.display()));
        let list: String = kept.iter().map(|p| format!("{}\n", p.display())).collect();
        std::fs::write(&list_path, list)
            .with_context(|| format!("writing {}", list_path.display()))?;
        println!(
            "embedded {} images ({skipped} skipped as unreadable); list in {}",
            kept.len(),
            list_path.display()
        );
    }
    if !args.text.is_empty() {
        let tokenizer = ClipTokenizer::from_dir(
            &args.teacher,
            clip.config.text_config.max_position_embeddings,
        )?;
        let texts: Vec<&str> = args.text.iter().map(String::as_str).collect();
        let ids = tokenizer.encode(&texts)?;
        let embeds = clip
            .text_embeds(&ids)
            .with_context(|| format!("embedding text with {}", args.teacher.display()))?;
        tensors.insert(
            "text_embeds".to_string(),
            embeds.to_device(&candle_core::Device::Cpu)?,
        );
        println!("embedded {} sentences", texts.len());
    }
    crate::checkpoint::tensor_file::save_tensors(&tensors, &args.out)?;
    println!("→ {}", args.out.display());
    Ok(())
}
