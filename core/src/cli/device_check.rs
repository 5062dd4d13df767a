//! `clasp device-check`: is the configured device (`run.device`) computing what the CPU computes?
//! Two checks, one line each, and an error if any fails:
//! - every op of [`crate::ops`] on the device against its composed reference on the CPU, values
//!   and gradients (on the CPU the op under test is the fused kernel, on CUDA candle's kernels);
//! - a few training steps of a PC-MoE ViT (forward, backward, AdamW) from the same seeded weights
//!   and batch, on the device and on the CPU with the composed ops: the losses step by step and
//!   the weights at the end;
//! - the same steps with bf16 products on the device (`run.precision = "bf16"`) against the same
//!   f32 CPU run, at bf16's own tolerance.
//!
//! `scripts/device/check.sh` runs it on a GPU with the binary built here with `--features cuda`.

use anyhow::{bail, Result};
use candle_core::Device;
use clap::Args;

use super::GlobalArgs;
use crate::device::parse_device;
use crate::model::{Precision, Preset};
use crate::ops::parity::{compare, OPS};
use crate::ops::train_parity::compare_training;

#[derive(Args, Debug)]
pub struct DeviceCheckArgs {
    /// ViT preset of the training-step check.
    #[arg(long, default_value = "nano")]
    pub preset: Preset,
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// Largest relative difference of a step's loss from the CPU run; ten times it bounds the
    /// difference of the weights' update, over the update's norm.
    #[arg(long, default_value_t = 1e-3)]
    pub train_tol: f64,
    /// The bound on a bf16 step's loss against the f32 CPU run's (relative).
    #[arg(long, default_value_t = 1e-3)]
    pub bf16_tol: f64,
    /// The bound on the bf16 run's weight update against the f32 CPU run's, over its norm.
    #[arg(long, default_value_t = 0.1)]
    pub bf16_update_tol: f64,
}

// The bf16 bounds, measured on the CPU (nano PC-MoE, batch 4 × 3 steps and 2 × 2): losses within
// 1e-4 of f32's, the update 3.1e-2 / 5.3e-2 of its norm away (Adam's normalised steps turn
// rounding in small gradients into whole steps); each default leaves a factor of 2–10.

/// Shapes each op is checked on: small, one with rows past the CPU kernels' serial threshold,
/// attention-sized scores, and a transposed (non-contiguous) input.
const OP_SHAPES: [(&[usize], bool); 4] = [
    (&[3, 5, 7], false),
    (&[4, 70, 96], false),
    (&[2, 3, 133, 133], false),
    (&[6, 9], true),
];

/// Values within 2e-5 and gradients within 1e-4 of the reference's scale: float32 reordering.
const OP_VALUE_TOL: f32 = 2e-5;
const OP_GRAD_TOL: f32 = 1e-4;

fn check_ops(device: &Device) -> Result<usize> {
    let mut failures = 0;
    for case in &OPS {
        let mut worst = (0f32, 0f32);
        let mut ok = true;
        for &(dims, transpose) in case.shapes_or(&OP_SHAPES) {
            let p = compare(case, dims, transpose, device, 7)?;
            ok &= p.within(OP_VALUE_TOL, OP_GRAD_TOL);
            worst.0 = worst.0.max(p.value_diff / (1.0 + p.value_scale));
            worst.1 = worst.1.max(p.worst_grad());
        }
        failures += usize::from(!ok);
        println!(
            "op {:<15} values {:>9.2e}  gradients {:>9.2e}  {}",
            case.name,
            worst.0,
            worst.1,
            if ok { "ok" } else { "FAILED" }
        );
    }
    Ok(failures)
}

fn check_training(args: &DeviceCheckArgs, device: &Device, precision: Precision) -> Result<bool> {
    let c = compare_training(args.preset, args.batch, args.steps, (device, precision))?;
    let (tol, update_tol) = match precision {
        Precision::F32 => (args.train_tol, args.train_tol * 10.0),
        Precision::Bf16 => (args.bf16_tol, args.bf16_update_tol),
    };
    let mut ok = true;
    for (i, (a, b)) in c.losses.iter().enumerate() {
        let rel = (a - b).abs() / b.abs().max(1e-12);
        ok &= rel <= tol;
        println!(
            "train {precision} step {}: loss {a:.6} vs CPU f32 {b:.6} (relative {rel:.1e})",
            i + 1
        );
    }
    let (rel, moved) = (c.update_difference, c.update_norm);
    ok &= rel <= update_tol;
    println!(
        "train {precision} {} PC-MoE, batch {}, {} steps: the update differs by {rel:.1e} of its norm {moved:.3e}  {}",
        args.preset,
        args.batch,
        args.steps,
        if ok { "ok" } else { "FAILED" }
    );
    Ok(ok)
}

/// With NCCL in the build and a GPU: a world-of-one communicator sums a tensor onto itself
/// (loads libnccl, initialises on candle's stream, runs the in-place all-reduce).
fn check_nccl(device: &Device) -> Result<bool> {
    #[cfg(feature = "nccl")]
    if device.is_cuda() {
        let gap = crate::distributed::nccl_self_test(device)?;
        let ok = gap == 0.0;
        println!(
            "nccl all-reduce and host collectives (sum, broadcast, gather), world of one: largest change {gap:.1e}  {}",
            if ok { "ok" } else { "FAILED" }
        );
        return Ok(ok);
    }
    let _ = device;
    Ok(true)
}

pub fn run(g: &GlobalArgs, args: DeviceCheckArgs) -> Result<()> {
    let config = g.load()?;
    let device = parse_device(&config.run.device)?;
    println!(
        "device-check: {} against the CPU reference",
        config.run.device
    );
    let op_failures = check_ops(&device)?;
    let train_ok = check_training(&args, &device, Precision::F32)?;
    let bf16_ok = check_training(&args, &device, Precision::Bf16)?;
    let nccl_ok = check_nccl(&device)?;
    let state = |ok: bool| if ok { "ok" } else { "off" };
    if op_failures > 0 || !train_ok || !bf16_ok || !nccl_ok {
        bail!(
            "device-check failed on {}: {op_failures} op(s) off, training {}, bf16 training {}, \
             NCCL {}",
            config.run.device,
            state(train_ok),
            state(bf16_ok),
            state(nccl_ok)
        );
    }
    println!("device-check: all checks passed on {}", config.run.device);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(train_tol: f64, bf16_update_tol: f64) -> DeviceCheckArgs {
        DeviceCheckArgs {
            preset: Preset::Nano,
            batch: 2,
            steps: 2,
            train_tol,
            bf16_tol: 1e-3,
            bf16_update_tol,
        }
    }

    #[test]
    fn training_with_the_fused_kernels_follows_the_composed_ops() {
        assert_eq!(check_ops(&Device::Cpu).unwrap(), 0);
        let cpu = &Device::Cpu;
        assert!(check_training(&args(1e-3, 0.1), cpu, Precision::F32).unwrap());
        assert!(check_training(&args(1e-3, 0.1), cpu, Precision::Bf16).unwrap());
    }

    #[test]
    fn a_difference_beyond_the_tolerance_fails_the_check() {
        // The fused kernels round differently from the composed ops, so a zero tolerance fails.
        let cpu = &Device::Cpu;
        assert!(!check_training(&args(0.0, 0.1), cpu, Precision::F32).unwrap());
        // bf16 products are further from f32 than f32's own rounding: the f32 run's update
        // bound (10 × 1e-3) fails them.
        assert!(!check_training(&args(1e-3, 1e-2), cpu, Precision::Bf16).unwrap());
    }
}
