//! `clasp bench train` and `clasp bench infer`: images/s and peak memory of a training step
//! (forward + backward + AdamW) or of a forward pass, plain ViT vs PC-MoE (and, for inference,
//! PC-MoE with one task's gates folded in). Each variant runs in its own process so peak memory
//! is its own; `scripts/bench/compare.sh` runs the PyTorch twin beside it.

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use clap::Args;
use serde::{Deserialize, Serialize};

use super::GlobalArgs;
use crate::device::parse_device;
use crate::model::{ParamStore, Precision, Preset, Vit, VitConfig};
use crate::optim::{build_groups, AdamW, AdamWConfig};
use crate::task_embedding::hashed_text_embedding;

/// What one benchmark step is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchMode {
    Train,
    Infer,
}

impl BenchMode {
    fn name(self) -> &'static str {
        match self {
            BenchMode::Train => "train",
            BenchMode::Infer => "infer",
        }
    }

    fn variants(self) -> &'static [&'static str] {
        match self {
            BenchMode::Train => &["plain", "pcmoe"],
            BenchMode::Infer => &["plain", "pcmoe", "folded"],
        }
    }
}

#[derive(Args, Debug)]
pub struct BenchModelArgs {
    #[arg(long, default_value = "small")]
    pub preset: Preset,
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Timed steps (after the warm-up steps).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Run one variant in this process (`plain`, `pcmoe`, `folded`) and print JSON; used internally.
    #[arg(long, hide = true)]
    pub variant: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Figures {
    variant: String,
    params: usize,
    images_per_s: f64,
    step_ms: f64,
    peak_rss_mib: f64,
}

/// Peak resident set size of this process (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    crate::proc_status::field("VmHWM")
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn run_variant(
    mode: BenchMode,
    args: &BenchModelArgs,
    variant: &str,
    (device, precision): (&Device, Precision),
) -> Result<Figures> {
    if !mode.variants().contains(&variant) {
        bail!(
            "unknown {} bench variant `{variant}` ({})",
            mode.name(),
            mode.variants().join(", ")
        );
    }
    let mut cfg = VitConfig::preset(args.preset);
    let task = (variant != "plain").then_some("ssl");
    if task.is_some() {
        cfg = cfg.with_clasp_defaults();
    }
    let store = ParamStore::new(device, 0);
    let mut vit = Vit::new(&cfg, &store)?;
    if let (Some(t), Some(p)) = (task, &cfg.prompts) {
        vit.add_task(t, &hashed_text_embedding(t, p.text_dim)?)?;
    }
    let params = store.num_params();
    let [h, w] = cfg.img_size;
    let x = Tensor::randn(0f32, 1.0, (args.batch, 3, h, w), device)?;
    let mut step: Box<dyn FnMut() -> Result<()>> = match mode {
        BenchMode::Train => {
            let groups = build_groups(&store.vars(), cfg.depth, 1.0);
            let mut opt = AdamW::new(groups, AdamWConfig::default())?;
            Box::new(move || {
                let out = precision.scope(|| vit.forward(&x, task))?;
                let loss = (out.cls.sqr()?.mean_all()? + out.patches.sqr()?.mean_all()?)?;
                let grads = loss.backward()?;
                opt.step(&grads, 1e-4, 0.05)?;
                device.synchronize()?;
                Ok(())
            })
        }
        BenchMode::Infer => {
            // Inference weights are plain tensors: no op records its inputs for a backward.
            let vit = if variant == "folded" {
                vit.fold("ssl", 0.0)?.detached()
            } else {
                vit.detached()
            };
            Box::new(move || {
                let out = precision.scope(|| vit.forward(&x, task))?;
                out.cls.sum_all()?.to_scalar::<f32>()?;
                Ok(())
            })
        }
    };
    for _ in 0..args.warmup {
        step()?;
    }
    let start = Instant::now();
    for _ in 0..args.steps {
        step()?;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(Figures {
        variant: variant.into(),
        params,
        images_per_s: (args.batch * args.steps) as f64 / secs,
        step_ms: secs * 1e3 / args.steps as f64,
        peak_rss_mib: peak_rss_mib(),
    })
}

pub fn run(g: &GlobalArgs, mode: BenchMode, args: BenchModelArgs) -> Result<()> {
    let config = g.load()?;
    let device = parse_device(&config.run.device)?;
    if let Some(v) = &args.variant {
        println!(
            "{}",
            serde_json::to_string(&run_variant(
                mode,
                &args,
                v,
                (&device, config.run.precision)
            )?)?
        );
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let mut rows = Vec::new();
    for variant in mode.variants() {
        eprintln!(
            "bench: {} {variant}, batch {}, {} steps…",
            args.preset, args.batch, args.steps
        );
        let mut cmd = Command::new(&exe);
        if let Some(c) = &g.config {
            cmd.arg("--config").arg(c);
        }
        for s in &g.set {
            cmd.arg("--set").arg(s);
        }
        let out = cmd
            .args(["bench", mode.name(), "--preset", args.preset.name()])
            .args(["--batch", &args.batch.to_string()])
            .args(["--steps", &args.steps.to_string()])
            .args(["--warmup", &args.warmup.to_string()])
            .args(["--variant", variant])
            .output()
            .context("running the benchmark child process")?;
        if !out.status.success() {
            bail!(
                "bench variant {variant} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .last()
            .context("benchmark child printed nothing")?;
        rows.push(serde_json::from_str::<Figures>(line)?);
    }
    let [h, w] = VitConfig::preset(args.preset).img_size;
    let what = match mode {
        BenchMode::Train => "train step (fwd+bwd+AdamW)",
        BenchMode::Infer => "inference (forward, no autograd)",
    };
    println!(
        "{what}, preset {}, batch {}, {h}x{w}, device {}, {}, {} threads",
        args.preset,
        args.batch,
        config.run.device,
        config.run.precision,
        candle_core::utils::get_num_threads()
    );
    println!(
        "{:<8} {:>12} {:>10} {:>10} {:>14}",
        "variant", "params", "img/s", "step ms", "peak RSS MiB"
    );
    for r in &rows {
        println!(
            "{:<8} {:>12} {:>10.2} {:>10.0} {:>14.0}",
            r.variant, r.params, r.images_per_s, r.step_ms, r.peak_rss_mib
        );
    }
    if let [plain, moe, ..] = &rows[..] {
        println!(
            "pcmoe/plain: params {:.2}x, speed {:.2}x",
            moe.params as f64 / plain.params as f64,
            moe.images_per_s / plain.images_per_s
        );
    }
    Ok(())
}
