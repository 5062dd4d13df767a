//! Forward + backward time of each fused CPU kernel against its composed candle reference, on
//! ViT-sized activations (batch 32, 129 tokens, width 384; MLP hidden 1536; attention scores of
//! 6 heads; attention itself from the packed qkv projection, width 3·384). Prints one line per op; `CLASP_COMPOSED_OPS` is ignored (both paths are timed).
//!
//!     cargo run --release -p clasp-core --example fused_ops

use std::time::Instant;

use anyhow::Result;
use candle_core::{Device, Tensor, Var};
use clasp_core::ops::{self, reference};

fn time(label: &str, reps: usize, f: &dyn Fn() -> Result<()>) -> Result<f64> {
    f()?; // warm-up: first-touch page faults, thread pools.
    let start = Instant::now();
    for _ in 0..reps {
        f()?;
    }
    let ms = start.elapsed().as_secs_f64() * 1e3 / reps as f64;
    println!("  {label:<10} {ms:8.2} ms");
    Ok(ms)
}

fn compare(
    name: &str,
    x: &Var,
    fused: &dyn Fn(&Tensor) -> Result<Tensor>,
    composed: &dyn Fn(&Tensor) -> Result<Tensor>,
) -> Result<()> {
    println!("{name} {:?} (forward + backward)", x.dims());
    let run = |op: &dyn Fn(&Tensor) -> Result<Tensor>| -> Result<()> {
        let y = op(x.as_tensor())?;
        let _ = y.sum_all()?.backward()?;
        Ok(())
    };
    let a = time("fused", 10, &|| run(fused))?;
    let b = time("composed", 10, &|| run(composed))?;
    println!("  speed-up  {:8.2}x", b / a);
    Ok(())
}

fn main() -> Result<()> {
    let dev = Device::Cpu;
    let tokens = Var::from_tensor(&Tensor::randn(0f32, 1.0, (32, 129, 384), &dev)?)?;
    let hidden = Var::from_tensor(&Tensor::randn(0f32, 1.0, (32, 129, 1536), &dev)?)?;
    let scores = Var::from_tensor(&Tensor::randn(0f32, 1.0, (32, 6, 129, 129), &dev)?)?;
    let w = Var::from_tensor(&Tensor::ones(384, candle_core::DType::F32, &dev)?)?;
    let b = Var::from_tensor(&Tensor::zeros(384, candle_core::DType::F32, &dev)?)?;
    let bias = Var::from_tensor(&Tensor::zeros(1536, candle_core::DType::F32, &dev)?)?;
    let qkv = Var::from_tensor(&Tensor::randn(0f32, 1.0, (32, 129, 3 * 384), &dev)?)?;
    let scale = 1.0 / 64f64.sqrt();
    compare(
        "attention",
        &qkv,
        &|x| Ok(ops::attention(x, 6, scale)?),
        &|x| Ok(reference::attention(x, 6, scale)?),
    )?;
    compare(
        "layer norm",
        &tokens,
        &|x| Ok(ops::layer_norm(x, &w, &b, 1e-6)?),
        &|x| Ok(reference::layer_norm(x, &w, &b, 1e-6)?),
    )?;
    compare(
        "softmax",
        &scores,
        &|x| Ok(ops::softmax_last_dim(x)?),
        &|x| Ok(reference::softmax_last_dim(x)?),
    )?;
    compare("gelu", &hidden, &|x| Ok(ops::gelu(x)?), &|x| {
        Ok(x.gelu_erf()?)
    })?;
    compare("quick gelu", &hidden, &|x| Ok(ops::quick_gelu(x)?), &|x| {
        Ok(reference::quick_gelu(x)?)
    })?;
    compare(
        "bias add",
        &hidden,
        &|x| Ok(ops::bias_add(x, &bias)?),
        &|x| Ok(x.broadcast_add(&bias)?),
    )?;
    Ok(())
}
