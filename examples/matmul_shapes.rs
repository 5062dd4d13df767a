//! GFLOP/s of candle's CPU matmul (the `gemm` crate) on the products of a ViT-S training step at
//! batch 32 (133 tokens: CLS, 4 prompts, 128 patches): the linear layers forward (x·Wᵀ) and
//! backward (g·W, gᵀ·x), and attention's batched per-head products. The same shapes in PyTorch:
//! `scripts/bench/matmul_shapes.py`; together they show how much of a step's gap is the matrix
//! kernel itself.
//!
//!     cargo run --release -p clasp-core --example matmul_shapes

use std::time::Instant;

use anyhow::Result;
use candle_core::{Device, Tensor};

// The binary's allocator, so fresh outputs are not page-faulted in on every call.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn time(name: &str, a: &Tensor, b: &Tensor, flops: usize) -> Result<()> {
    let _ = a.matmul(b)?; // warm-up: thread pools, first touch.
    let reps = 20;
    let start = Instant::now();
    for _ in 0..reps {
        let _ = a.matmul(b)?;
    }
    let s = start.elapsed().as_secs_f64() / reps as f64;
    println!(
        "{name:<28} {:>7.1} GFLOP/s {:>7.2} ms",
        2.0 * flops as f64 / s / 1e9,
        s * 1e3
    );
    Ok(())
}

fn main() -> Result<()> {
    let dev = Device::Cpu;
    let randn = |dims: &[usize]| Tensor::randn(0f32, 1.0, dims, &dev);
    let m = 32 * 133;
    println!("candle {} threads", candle_core::utils::get_num_threads());
    for (name, k, n) in [("qkv", 384, 1152), ("fc1", 384, 1536), ("fc2", 1536, 384)] {
        let x = randn(&[m, k])?;
        let w = randn(&[n, k])?;
        let g = randn(&[m, n])?;
        time(&format!("{name} forward x·Wᵀ"), &x, &w.t()?, m * k * n)?;
        time(&format!("{name} input grad g·W"), &g, &w, m * k * n)?;
        time(&format!("{name} weight grad gᵀ·x"), &g.t()?, &x, m * k * n)?;
    }
    let heads = 32 * 6;
    let q = randn(&[heads, 133, 64])?;
    let k = randn(&[heads, 133, 64])?;
    let p = randn(&[heads, 133, 133])?;
    let flops = heads * 133 * 133 * 64;
    time("attention q·kᵀ (192 heads)", &q, &k.transpose(1, 2)?, flops)?;
    time("attention p·v (192 heads)", &p, &q, flops)?;
    Ok(())
}
