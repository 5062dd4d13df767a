//! `clasp bench data`: synthetic rendering and loader throughput, per core.

use std::time::Instant;

use anyhow::Result;
use clap::Args;

use crate::data::augment::MultiCropConfig;
use crate::data::image_folder::MultiCropFolder;
use crate::data::loader::{Loader, LoaderConfig, Shard};
use crate::data::sampler::Sampler;
use crate::data::synth::dataset::{cameras, generate, plan, render_job, SynthOptions};

#[derive(Args, Debug)]
pub struct BenchDataArgs {
    /// Images to render (and then load).
    #[arg(long, default_value_t = 400)]
    pub images: u32,
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
}

fn encode(r: &crate::data::synth::scene::Rendered) -> Result<usize> {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90).encode(
        &r.rgb,
        r.width as u32,
        r.height as u32,
        image::ExtendedColorType::Rgb8,
    )?;
    Ok(bytes.len())
}

pub fn run(args: BenchDataArgs) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let tmp = std::env::temp_dir().join(format!("clasp-bench-data-{}", std::process::id()));
    let opts = SynthOptions {
        out: tmp.clone(),
        identities: (args.images / 8).max(2),
        images_per_id: 8,
        cameras: 6,
        seed: 0,
        height: 256,
        width: 128,
        jpeg_quality: 90,
        threads: 1,
    };
    // Rendering + JPEG encoding on one thread, in memory.
    let cams = cameras(&opts);
    let jobs = plan(&opts);
    let start = Instant::now();
    let mut bytes = 0;
    for job in &jobs {
        bytes += encode(&render_job(&opts, &cams, job))?;
    }
    let synth_rate = jobs.len() as f64 / start.elapsed().as_secs_f64();
    println!(
        "synth: {synth_rate:.0} images/s per core (render + JPEG, 256x128, {} images, {:.1} KiB each)",
        jobs.len(),
        bytes as f64 / jobs.len() as f64 / 1024.0
    );
    // The whole dataset writer on every core (formats, label PNGs, links).
    let start = Instant::now();
    generate(
        &SynthOptions {
            threads: cores,
            ..opts.clone()
        },
        &|_| {},
    )?;
    let gen_rate = jobs.len() as f64 / start.elapsed().as_secs_f64();
    println!(
        "synth dataset writer: {gen_rate:.0} images/s on {cores} threads ({:.0} per core)",
        gen_rate / cores as f64
    );

    // Decode + DINO multi-crop (2 global 256x128 + 6 local 128x64) through the loader.
    let root = tmp.join("reid");
    for workers in [1, cores] {
        let loader = Loader::new(
            MultiCropFolder::new(&root, MultiCropConfig::default())?,
            LoaderConfig {
                batch_size: args.batch,
                workers,
                prefetch: 4,
                seed: 0,
                drop_last: false,
                sampler: Sampler::Shuffle,
                shard: Shard::default(),
            },
        );
        let start = Instant::now();
        let n: usize = loader.epoch(0)?.map(|b| b.items.len()).sum();
        let rate = n as f64 / start.elapsed().as_secs_f64();
        println!(
            "loader: {rate:.0} images/s with {workers} worker(s) ({:.0} per core), decode + multi-crop of {n} images",
            rate / workers as f64
        );
    }
    std::fs::remove_dir_all(&tmp).ok();
    Ok(())
}
