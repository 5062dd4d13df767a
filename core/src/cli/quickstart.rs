//! `clasp quickstart`: the main job on built-in data. The stages of DESIGN §1 that exist run for
//! real; the ones later issues build are listed as missing, and the command says so.

use anyhow::{bail, Result};
use candle_core::Tensor;
use clap::Args;

use super::GlobalArgs;
use crate::backbone::Backbone;
use crate::checkpoint::{self, store::save_step};
use crate::data::images::{list_images, load_normalized};
use crate::data::synth::dataset::{generate, SynthOptions};
use crate::device::parse_device;
use crate::export::timm::to_timm;
use crate::optim::{build_groups, AdamW, AdamWConfig};
use crate::run_dir::RunDir;

#[derive(Args, Debug)]
pub struct QuickstartArgs {
    /// The short variant used by the end-to-end test.
    #[arg(long)]
    pub fast: bool,
}

/// Stages of the full quickstart not in it yet, with the issue that adds them.
const MISSING: [(&str, u32); 5] = [
    (
        "teacher: `clasp teacher train` (built, #6) run as a quickstart stage",
        7,
    ),
    (
        "label: `clasp label` (built, #6) run as a quickstart stage",
        7,
    ),
    ("pretrain: DINO + part + attribute losses with PC-MoE", 7),
    ("finetune: reid, parsing, pose and attribute plugins", 7),
    ("report: scratch vs DINO vs CLASP without / with PC-MoE", 7),
];

pub fn run(g: &GlobalArgs, args: QuickstartArgs) -> Result<()> {
    let mut sources = g.sources();
    // Quickstart defaults, still overridable by --config/--set.
    sources.overrides.splice(
        0..0,
        ["run.name=quickstart", "model.preset=nano"].map(String::from),
    );
    let config = sources.load()?;
    let device = parse_device(&config.run.device)?;
    let run = RunDir::create(&config)?;
    println!(
        "[1/5] config resolved → {}/config.resolved.toml",
        run.path.display()
    );

    // Built-in data: synthetic people in every real format (reused when already there).
    let [h, w] = config.model.img_size;
    let data = run.path.join("data");
    let synth = SynthOptions {
        out: data.clone(),
        identities: if args.fast { 8 } else { 100 },
        images_per_id: if args.fast { 4 } else { 8 },
        cameras: 6,
        seed: config.run.seed,
        height: h,
        width: w,
        jpeg_quality: 90,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    if data.join("synth.json").exists() {
        println!(
            "[2/5] synthetic data already in {} (reused)",
            data.display()
        );
    } else {
        let s = generate(&synth, &|_| {})?;
        println!(
            "[2/5] synth: {} images of {} identities → {} (ReID, parsing, pose, attributes, captions)",
            s.images,
            synth.identities,
            data.display()
        );
    }

    let bb = Backbone::fresh(&config, &device, run.config_hash.clone())?;
    println!(
        "[3/5] backbone: {} preset, {} parameters, PC-MoE {}, tasks {:?}",
        config.model.preset,
        bb.store.num_params(),
        if config.model.moe.enabled {
            "on"
        } else {
            "off"
        },
        bb.manifest.tasks
    );

    // One real optimisation step on rendered people: checks every variable is trained before
    // anything expensive runs.
    let batch = if args.fast { 2 } else { 8 };
    let files = list_images(&data.join("reid/bounding_box_train"))?;
    let mut pixels = Vec::with_capacity(batch * 3 * h * w);
    for f in files.iter().take(batch) {
        pixels.extend(load_normalized(f, h, w)?);
    }
    let x = Tensor::from_vec(pixels, (batch.min(files.len()), 3, h, w), &device)?;
    // Every task's prompt must be trained, so the check sums a loss over all tasks.
    let tasks: Vec<Option<String>> = if bb.manifest.tasks.is_empty() {
        vec![None]
    } else {
        bb.manifest.tasks.iter().cloned().map(Some).collect()
    };
    let mut loss = Tensor::zeros((), candle_core::DType::F32, &device)?;
    for task in &tasks {
        let out = bb.vit.forward(&x, task.as_deref())?;
        loss = (loss + out.cls.sqr()?.mean_all()? + out.patches.sqr()?.mean_all()?)?;
    }
    let task = tasks[0].clone();
    let grads = loss.backward()?;
    let problems = bb.store.gradient_problems(&grads)?;
    if !problems.is_empty() {
        bail!(
            "gradient check failed for {} variables: {problems:?}",
            problems.len()
        );
    }
    let o = &config.optim;
    let mut opt = AdamW::new(
        build_groups(&bb.store.vars(), bb.vit.cfg.depth, o.layer_decay),
        AdamWConfig {
            beta1: o.beta1,
            beta2: o.beta2,
            eps: o.eps,
            max_grad_norm: (o.clip_grad > 0.0).then_some(o.clip_grad),
        },
    )?;
    let stats = opt.step(&grads, o.lr, o.weight_decay)?;
    let mut manifest = bb.manifest.clone();
    manifest.step = 1;
    let optim_state = opt.state_dict()?;
    let ckpt = save_step(&run.checkpoints(), 1, config.checkpoint.keep_last, |dir| {
        checkpoint::save(dir, &bb.vit, &bb.store, Some(&optim_state), &manifest)
    })?;
    println!(
        "[4/5] one AdamW step: loss {:.4}, grad norm {:.4}, all {} variables received gradients → {}",
        loss.to_scalar::<f32>()?,
        stats.grad_norm,
        bb.store.vars().len(),
        ckpt.display()
    );

    let inference = bb.for_inference(task.as_deref(), config.model.moe.fold_threshold)?;
    let (sd, _) = to_timm(&inference)?;
    println!(
        "[5/5] folded for task {:?}: {:.1} → {:.1} MFLOPs/image; timm export has {} tensors",
        task,
        bb.vit.flops(h, w) as f64 / 1e6,
        inference.flops(h, w) as f64 / 1e6,
        sd.len()
    );
    println!("\nNot in the quickstart yet (the full quickstart needs them):");
    for (stage, issue) in MISSING {
        println!("  - {stage}  (issue #{issue})");
    }
    Ok(())
}
