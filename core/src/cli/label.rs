//! `clasp label --teacher DIR --images DIR --out CACHE [--shard i/n]`: the part and attribute
//! pseudo-label cache (settings under `[label]`).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use super::GlobalArgs;
use crate::device::device_for_rank;
use crate::teacher::label_job::{run_label, LabelRequest, ShardSelection};

#[derive(Args, Debug)]
pub struct LabelArgs {
    /// CLIP folder in Hugging Face layout (a downloaded CLIP or `clasp teacher train`'s output).
    #[arg(long)]
    pub teacher: PathBuf,
    /// Folder of person crops (searched recursively).
    #[arg(long)]
    pub images: PathBuf,
    /// Cache folder (index.json + shard-NNNNN.safetensors).
    #[arg(long)]
    pub out: PathBuf,
    /// This worker's shards, `i/n`: shards i, i + n, i + 2n, …
    #[arg(long)]
    pub shard: Option<String>,
    /// Stop after writing this many shards; a rerun continues from there.
    #[arg(long)]
    pub max_shards: Option<usize>,
}

pub fn run(g: &GlobalArgs, args: LabelArgs) -> Result<()> {
    let config = g.load()?;
    super::warn_unused_precision(&config, "label");
    let world = crate::distributed::world();
    let device = device_for_rank(&config.run.device, &world)?;
    // Labelling sums nothing on the GPU; a torchrun-style job's few host collectives do.
    if world.collectives_need_gpus() {
        world.join_gpus(&device)?;
    }
    // Under mpirun every process is one `--shard rank/size` worker of the same cache.
    let shards = match (&args.shard, world.size) {
        (Some(s), 1) => ShardSelection::parse(s)?,
        (None, 1) => ShardSelection::ALL,
        (Some(s), n) => bail!(
            "--shard {s} under mpirun: each of the {n} processes already takes its share of the \
             shards (rank/{n}); drop --shard, or run the workers without mpirun"
        ),
        (None, n) => ShardSelection {
            index: world.rank,
            count: n,
        },
    };
    let s = run_label(&LabelRequest {
        teacher: &args.teacher,
        images: &args.images,
        out: &args.out,
        shards,
        max_new_shards: args.max_shards,
        settings: &config.label,
        device: &device,
    })?;
    if !s.unknown_words.is_empty() {
        println!(
            "warning: the teacher's tokenizer does not know words of these prompts (they embed \
             as <|unk|>): {}",
            s.unknown_words.join("; ")
        );
    }
    println!(
        "labelled {} shards ({} already done) at {:.1} images/s; {} unreadable images skipped{}",
        s.written,
        s.already_done,
        s.images_per_second,
        s.unreadable.len(),
        if s.unreadable.is_empty() {
            String::new()
        } else {
            format!(" ({})", s.unreadable.join(", "))
        }
    );
    if world.size > 1 {
        println!("rank {} of {} processes", world.rank, world.size);
    }
    if s.complete {
        println!(
            "cache complete: {} images in {} shards → {}",
            s.images,
            s.total_shards,
            args.out.display()
        );
    } else {
        println!(
            "cache incomplete: shards missing of {} (rerun the same command, or the other --shard workers) → {}",
            s.total_shards,
            args.out.display()
        );
    }
    // The shards stay (their unreadable images are marked invalid); the job still fails, as a
    // run over a wrong folder or format should.
    let max = config.data.max_skipped_fraction;
    if s.unreadable.len() as f64 > max * s.labelled as f64 {
        bail!(
            "{} of {} images could not be read, more than `data.max_skipped_fraction` = {max} of \
             them; the first: {}",
            s.unreadable.len(),
            s.labelled,
            s.unreadable[0]
        );
    }
    Ok(())
}
