//! `clasp pretrain [--data DIR] [--labels CACHE] [--init CKPT] [--resume]`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::GlobalArgs;
use crate::device::device_for_rank;
use crate::pretrain::pretrain;
use crate::run_dir::{Existing, RunDir};

#[derive(Args, Debug)]
pub struct PretrainArgs {
    /// Folder of person crops (same as --set pretrain.data=DIR).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Pseudo-label cache from `clasp label` (same as --set pretrain.labels=DIR).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Backbone checkpoint the student starts from, prompts excepted (same as --set
    /// pretrain.init=DIR), e.g. one from `clasp init --from-timm`.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Continue from the newest checkpoint of the run (`run.dir/run.name/checkpoints`).
    #[arg(long)]
    pub resume: bool,
    /// Start afresh in a run folder that holds an earlier run, moving that run aside to
    /// `<name>.replaced-<time>` (never deleted); without it or --resume such a folder is refused.
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
}

pub fn run(g: &GlobalArgs, args: PretrainArgs) -> Result<()> {
    let mut sources = g.sources();
    for (key, value) in [
        ("pretrain.data", &args.data),
        ("pretrain.labels", &args.labels),
        ("pretrain.init", &args.init),
    ] {
        if let Some(v) = value {
            sources.overrides.push(format!("{key}=\"{}\"", v.display()));
        }
    }
    let mut config = sources.load()?;
    if config.run.name == "default" {
        config.run.name = "pretrain".into();
    }
    let device = device_for_rank(&config.run.device, &crate::distributed::world())?;
    // With NCCL, the ranks' GPUs sum the gradients among themselves.
    crate::distributed::world().join_gpus(&device)?;
    let world = crate::distributed::world();
    let existing = Existing::from_flags(args.resume, args.overwrite);
    let run = RunDir::create_in(&config, existing, &world)?;
    if world.size > 1 {
        println!("rank {} of {} processes", world.rank, world.size);
    }
    let m = &config.model;
    println!(
        "pre-training a {} ViT (prompts {}, PC-MoE {}) on {}{} → {}",
        m.preset,
        if m.prompts.enabled { "on" } else { "off" },
        if m.moe.enabled { "on" } else { "off" },
        config
            .pretrain
            .data
            .as_deref()
            .map_or(String::from("(no data)"), |d| d.display().to_string()),
        match &config.pretrain.labels {
            None => " (no pseudo-labels: DINO only)".to_string(),
            Some(l) => format!(" with pseudo-labels {}", l.display()),
        },
        run.path.display()
    );
    let out = pretrain(&config, &run, &device, args.resume)?;
    if !world.is_main() {
        return Ok(()); // rank 0 reports for the job
    }
    if let Some(last) = &out.last {
        println!(
            "step {}: loss {:.4} (ssl {:.4}{}{}), teacher entropy {:.3}, KL {:.4}",
            last.step,
            last.loss,
            last.loss_ssl,
            last.loss_part
                .map_or(String::new(), |v| format!(", part {v:.4}")),
            last.loss_attr
                .map_or(String::new(), |v| format!(", attr {v:.4}")),
            last.teacher_entropy,
            last.kl
        );
    }
    match &out.collapse {
        Some(kind) => println!("COLLAPSE at the end of the run: {kind}"),
        None => println!("no collapse detected (teacher entropy below 95% of its maximum, batch-mean entropy above 5%)"),
    }
    println!(
        "{} steps; checkpoint {}\nmetrics {}/metrics.jsonl · plots curves.png, gates.png",
        out.steps,
        out.checkpoint.display(),
        run.path.display()
    );
    Ok(())
}
