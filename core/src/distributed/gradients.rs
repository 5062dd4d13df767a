//! What data parallelism exchanges: the gradients summed over the world before each optimiser
//! step, and rank 0's parameters copied to every rank before the first.
//!
//! Gradients go by parameter name, in sorted order (a `VarMap`'s iteration order differs between
//! processes), in buckets of [`BUCKET_VALUES`] values. A parameter that has a gradient on some
//! rank and not on another (a task head no sample of that rank's batch reached) counts as zeros
//! on the latter; one that has a gradient on no rank stays absent, as in one process, so AdamW
//! leaves it alone.

use std::collections::BTreeMap;

use anyhow::{ensure, Result};
use candle_core::{DType, Tensor, Var};
use sha2::Digest;

use super::World;
use crate::optim::AdamW;

/// Values per all-reduce: 25 MB of f32, PyTorch DDP's default bucket.
pub const BUCKET_VALUES: usize = 25 * 1024 * 1024 / 4;

/// Sums `grads` (by parameter name) over the world, in place. Each rank's gradients must already
/// be weighted by its share of the step's samples, so the sum is the gradient of the whole step.
pub fn sum_gradients(
    world: &World,
    opt: &AdamW,
    grads: &mut BTreeMap<String, Tensor>,
) -> Result<()> {
    if world.size == 1 {
        return Ok(());
    }
    let mut params: Vec<(&String, &Var)> = opt
        .groups
        .iter()
        .flat_map(|g| g.params.iter().map(|(n, v)| (n, v)))
        .collect();
    params.sort_by(|a, b| a.0.cmp(b.0));
    // Which parameters have a gradient anywhere.
    let mut present: Vec<f32> = params
        .iter()
        .map(|(n, _)| f32::from(u8::from(grads.contains_key(*n))))
        .collect();
    world.sum_f32(&mut present)?;
    let live: Vec<(&String, &Var)> = params
        .into_iter()
        .zip(&present)
        .filter(|(_, p)| **p > 0.0)
        .map(|(p, _)| p)
        .collect();
    for bucket in buckets(&live) {
        if sum_bucket_on_device(world, bucket, grads)? {
            continue;
        }
        let mut flat = Vec::new();
        for (name, var) in bucket {
            match grads.get(*name) {
                Some(g) => flat.extend(g.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?),
                None => flat.extend(std::iter::repeat_n(0f32, var.elem_count())),
            }
        }
        world.sum_f32(&mut flat)?;
        let mut at = 0;
        for (name, var) in bucket {
            let n = var.elem_count();
            let sum = Tensor::from_slice(&flat[at..at + n], var.shape(), var.device())?;
            grads.insert((*name).clone(), sum.to_dtype(var.dtype())?);
            at += n;
        }
    }
    Ok(())
}

/// Sums one bucket in place on the GPU (NCCL), without a copy through the host; `false` when
/// the world has no GPU collectives for these parameters.
fn sum_bucket_on_device(
    world: &World,
    bucket: &[(&String, &Var)],
    grads: &mut BTreeMap<String, Tensor>,
) -> Result<bool> {
    let Some((_, first)) = bucket.first() else {
        return Ok(true);
    };
    if !world.sums_on_device(first.device()) {
        return Ok(false);
    }
    let parts = bucket
        .iter()
        .map(|(name, var)| match grads.get(*name) {
            Some(g) => Ok(g.to_dtype(DType::F32)?.flatten_all()?),
            None => Ok(Tensor::zeros(var.elem_count(), DType::F32, var.device())?),
        })
        .collect::<Result<Vec<_>>>()?;
    let flat = Tensor::cat(&parts, 0)?.contiguous()?;
    world.sum_on_device(&flat)?;
    let mut at = 0;
    for (name, var) in bucket {
        let n = var.elem_count();
        let sum = flat.narrow(0, at, n)?.reshape(var.shape())?;
        grads.insert((*name).clone(), sum.to_dtype(var.dtype())?);
        at += n;
    }
    Ok(true)
}

/// Consecutive runs of `params` of at most [`BUCKET_VALUES`] values (a larger parameter alone).
fn buckets<'a, 'b>(params: &'b [(&'a String, &'a Var)]) -> Vec<&'b [(&'a String, &'a Var)]> {
    let mut out = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, (_, v)) in params.iter().enumerate() {
        if size > 0 && size + v.elem_count() > BUCKET_VALUES {
            out.push(&params[start..i]);
            (start, size) = (i, 0);
        }
        size += v.elem_count();
    }
    if start < params.len() {
        out.push(&params[start..]);
    }
    out
}

/// Sets every rank's `params` to rank 0's (sorted by name; every rank must hold the same names
/// and shapes), so the ranks start from one model whatever each built or loaded.
pub fn broadcast_parameters(world: &World, params: &BTreeMap<String, Var>) -> Result<()> {
    if world.size == 1 {
        return Ok(());
    }
    // The names and shapes first: ranks holding different models would otherwise exchange
    // misaligned bytes without noticing.
    let layout: String = params
        .iter()
        .map(|(name, v)| format!("{name}{:?};", v.dims()))
        .collect();
    let digest = sha2::Sha256::digest(layout.as_bytes());
    ensure!(
        world.same_everywhere(&digest)?,
        "the ranks built different models ({} parameters here): they cannot train as one",
        params.len()
    );
    for (_, var) in params.iter() {
        let mut values = var
            .as_tensor()
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        world.broadcast_f32(&mut values)?;
        let t = Tensor::from_slice(&values, var.shape(), var.device())?.to_dtype(var.dtype())?;
        var.set(&t)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn buckets_cover_every_parameter_in_order_within_the_size() -> Result<()> {
        let names: Vec<String> = (0..5).map(|i| format!("p{i}")).collect();
        let sizes = [
            BUCKET_VALUES / 2,
            BUCKET_VALUES / 2,
            1,
            BUCKET_VALUES * 2,
            3,
        ];
        let vars: Vec<Var> = sizes
            .iter()
            .map(|n| Var::zeros(*n, DType::F32, &Device::Cpu))
            .collect::<candle_core::Result<_>>()?;
        let params: Vec<(&String, &Var)> = names.iter().zip(&vars).collect();
        let b = buckets(&params);
        let counts: Vec<usize> = b.iter().map(|b| b.len()).collect();
        // Two halves fill one bucket; the 1 starts the next, the oversized one stands alone.
        assert_eq!(counts, vec![2, 1, 1, 1]);
        let flat: Vec<&String> = b.iter().flat_map(|b| b.iter().map(|p| p.0)).collect();
        assert_eq!(flat, names.iter().collect::<Vec<_>>());
        Ok(())
    }
}
