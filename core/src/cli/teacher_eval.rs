//! `clasp teacher eval --teacher DIR --data SYNTH`: pseudo-label quality against a synthetic
//! set's ground truth (part mIoU beside the row baseline, attribute mA) and a picture.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::GlobalArgs;
use crate::device::parse_device;
use crate::teacher::labeller::Labeller;
use crate::teacher::quality::evaluate_pseudo_labels;

#[derive(Args, Debug)]
pub struct TeacherEvalArgs {
    /// CLIP folder in Hugging Face layout.
    #[arg(long)]
    pub teacher: PathBuf,
    /// Synthetic dataset root (`clasp synth` output): its LIP `val` split and attribute table.
    #[arg(long)]
    pub data: PathBuf,
    /// Score at most this many images.
    #[arg(long, default_value_t = 600)]
    pub limit: usize,
    /// Write pseudo-labels beside the truth for the first images here (PNG).
    #[arg(long)]
    pub picture: Option<PathBuf>,
    /// Write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn run(g: &GlobalArgs, args: TeacherEvalArgs) -> Result<()> {
    let config = g.load()?;
    super::warn_unused_precision(&config, "teacher eval");
    let device = parse_device(&config.run.device)?;
    let labeller = Labeller::new(&args.teacher, &config.label, &device)?;
    if !labeller.unknown_words.is_empty() {
        println!(
            "warning: prompts with words the teacher does not know: {}",
            labeller.unknown_words.join("; ")
        );
    }
    let r = evaluate_pseudo_labels(
        &labeller,
        &args.data,
        args.limit,
        config.label.batch_size,
        args.picture.as_deref(),
    )?;
    println!(
        "pseudo-labels of {} images at {}×{} ({}×{} patches)",
        r.images,
        labeller.vocabulary.img_size[0],
        labeller.vocabulary.img_size[1],
        labeller.vocabulary.grid[0],
        labeller.vocabulary.grid[1]
    );
    println!("{:<14} {:>8} {:>12}", "part", "teacher", "row baseline");
    for ((name, iou), (_, row)) in r.part_iou.iter().zip(&r.row_baseline_iou) {
        println!("{name:<14} {iou:>8.4} {row:>12.4}");
    }
    println!(
        "{:<14} {:>8.4} {:>12.4}   (mean part confidence {:.3})",
        "mIoU", r.part_miou, r.row_baseline_miou, r.part_confidence
    );
    for (name, acc) in &r.attribute_accuracy {
        println!("  {name:<20} {acc:.4}");
    }
    println!(
        "attribute mA {:.4} over {} attributes",
        r.attribute_ma,
        r.attribute_accuracy.len()
    );
    if let Some(p) = &args.picture {
        println!("picture (image | pseudo-labels | truth) → {}", p.display());
    }
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_string_pretty(&r)?)?;
    }
    Ok(())
}
