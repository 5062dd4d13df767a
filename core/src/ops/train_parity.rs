//! Does a device train as the CPU does? A few training steps of a PC-MoE ViT (forward,
//! backward, AdamW) from the same seeded weights and batch, on the device and on the CPU with the
//! composed reference ops: the losses step by step and the weights' update at the end. Beside
//! [`super::parity`], which compares single ops; `clasp device-check` prints both.

use std::collections::BTreeMap;

use anyhow::Result;
use candle_core::{DType, Device, Tensor, D};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{log_softmax_last_dim, with_composed_ops};
use crate::model::{ParamStore, Precision, Preset, Vit, VitConfig};
use crate::optim::{build_groups, AdamW, AdamWConfig};
use crate::task_embedding::hashed_text_embedding;

/// Weights by name, as CPU copies (a `Var`'s tensor is updated in place by the optimiser).
fn snapshot(store: &ParamStore) -> Result<BTreeMap<String, Tensor>> {
    store
        .tensors()
        .into_iter()
        .map(|(k, t)| Ok((k, t.to_device(&Device::Cpu)?.to_dtype(DType::F32)?.copy()?)))
        .collect()
}

/// What `steps` AdamW steps give: the losses, the weights before and after. The model is
/// seeded the same on any device.
struct TrainRun {
    losses: Vec<f64>,
    start: BTreeMap<String, Tensor>,
    end: BTreeMap<String, Tensor>,
}

fn train_steps(
    cfg: &VitConfig,
    images: &Tensor,
    steps: usize,
    (device, precision): (&Device, Precision),
) -> Result<TrainRun> {
    let store = ParamStore::new(device, 0);
    let mut vit = Vit::new(cfg, &store)?;
    let text_dim = cfg.prompts.as_ref().map_or(512, |p| p.text_dim);
    vit.add_task("ssl", &hashed_text_embedding("ssl", text_dim)?)?;
    let mut opt = AdamW::new(
        build_groups(&store.vars(), cfg.depth, 1.0),
        AdamWConfig::default(),
    )?;
    let start = snapshot(&store)?;
    let x = images.to_device(device)?;
    let mut losses = Vec::new();
    for _ in 0..steps {
        let out = precision.scope(|| vit.forward(&x, Some("ssl")))?;
        // Squares of every token, and a log-softmax over the CLS features as DINO's loss has.
        let ce = log_softmax_last_dim(&out.cls)?
            .narrow(D::Minus1, 0, 1)?
            .mean_all()?
            .neg()?;
        let loss = ((out.cls.sqr()?.mean_all()? + out.patches.sqr()?.mean_all()?)? + ce)?;
        losses.push(loss.to_dtype(DType::F64)?.to_scalar::<f64>()?);
        let grads = loss.backward()?;
        opt.step(&grads, 1e-3, 0.05)?;
    }
    Ok(TrainRun {
        losses,
        start,
        end: snapshot(&store)?,
    })
}

/// Σ over the weights of ‖a − b‖², as f64.
fn sq_distance(a: &BTreeMap<String, Tensor>, b: &BTreeMap<String, Tensor>) -> Result<f64> {
    let mut total = 0.0;
    for (name, x) in a {
        total += (x - &b[name])?.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
    }
    Ok(total)
}

/// A device's training run against the CPU's.
pub struct TrainComparison {
    /// (device, CPU) loss of each step.
    pub losses: Vec<(f64, f64)>,
    /// ‖w − w_cpu‖ / ‖w_cpu − w_0‖ after the last step. Adam divides by √v, so a weight whose
    /// gradient is rounding noise moves by ~lr either way: the weights are compared as updates,
    /// not elementwise.
    pub update_difference: f64,
    /// ‖w_cpu − w_0‖.
    pub update_norm: f64,
}

/// `steps` training steps of a `preset` PC-MoE ViT on a seeded batch of `batch` images, on
/// `device` in `precision` and on the CPU in f32 with the composed ops.
pub fn compare_training(
    preset: Preset,
    batch: usize,
    steps: usize,
    (device, precision): (&Device, Precision),
) -> Result<TrainComparison> {
    let cfg = VitConfig::preset(preset).with_clasp_defaults();
    let [h, w] = cfg.img_size;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let n = batch * 3 * h * w;
    let pixels: Vec<f32> = (0..n).map(|_| rng.gen_range(-2.0f32..2.0)).collect();
    let images = Tensor::from_vec(pixels, (batch, 3, h, w), &Device::Cpu)?;
    let cpu_f32 = (&Device::Cpu, Precision::F32);
    let reference = with_composed_ops(|| train_steps(&cfg, &images, steps, cpu_f32))?;
    let run = train_steps(&cfg, &images, steps, (device, precision))?;
    let off = sq_distance(&run.end, &reference.end)?.sqrt();
    let moved = sq_distance(&reference.end, &reference.start)?.sqrt();
    Ok(TrainComparison {
        losses: run.losses.into_iter().zip(reference.losses).collect(),
        update_difference: off / moved.max(1e-12),
        update_norm: moved,
    })
}
