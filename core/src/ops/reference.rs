//! The composed (primitive candle op) versions of the fused kernels: what runs off the CPU, and
//! what the fused kernels are tested against. candle's own fused `layer_norm` and
//! `softmax_last_dim` record no backward, hence these.

use candle_core::{Result, Tensor, D};

pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = centred.broadcast_div(&(var + eps)?.sqrt()?)?;
    normed.broadcast_mul(weight)?.broadcast_add(bias)
}

/// The max is detached: softmax ignores shifts.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

pub fn log_softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let shifted = x.broadcast_sub(&max)?;
    shifted.broadcast_sub(&shifted.exp()?.sum_keepdim(D::Minus1)?.log()?)
}

pub fn quick_gelu(x: &Tensor) -> Result<Tensor> {
    x.mul(&candle_nn::ops::sigmoid(&(x * 1.702)?)?)
}

/// q, k, v taken apart (copies), one batched product per step, heads put back side by side.
pub fn attention(qkv: &Tensor, heads: usize, scale: f64) -> Result<Tensor> {
    let (b, n, w) = qkv.dims3()?;
    let dh = w / (3 * heads);
    let qkv = qkv
        .reshape((b, n, 3, heads, dh))?
        .permute((2, 0, 3, 1, 4))?;
    let q = qkv.get(0)?.contiguous()?;
    let k = qkv.get(1)?.contiguous()?;
    let v = qkv.get(2)?.contiguous()?;
    let attn = softmax_last_dim(&(q.matmul(&k.t()?)? * scale)?)?;
    attn.matmul(&v)?
        .transpose(1, 2)?
        .reshape((b, n, heads * dh))
}
