//! Text embeddings e_t that seed task prompts when no CLIP teacher is given.
//!
//! DESIGN §3 seeds each prompt with the CLIP text embedding of the task's description. Until a
//! teacher is configured, a task gets a fixed pseudo-random unit vector derived from its name
//! (sha256-seeded), so the same task always starts from the same prompt and different tasks start
//! from different ones. Runs say when they use this fallback.

use candle_core::{Device, Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

pub fn hashed_text_embedding(task: &str, dim: usize) -> Result<Tensor> {
    let digest = Sha256::digest(task.as_bytes());
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&digest);
    let mut rng = ChaCha8Rng::from_seed(seed);
    let mut v: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::MIN_POSITIVE);
    v.iter_mut().for_each(|x| *x /= norm);
    Tensor::from_vec(v, dim, &Device::Cpu)
}

/// Name of the tensor a task-embedding file holds.
pub const EMBEDDING_KEY: &str = "embedding";

/// A configured text embedding: the 1-D tensor `embedding` of length `dim` in a safetensors file.
pub fn read_text_embedding(path: &std::path::Path, dim: usize) -> anyhow::Result<Tensor> {
    use anyhow::Context;
    let tensors = candle_core::safetensors::load(path, &Device::Cpu).with_context(|| {
        format!(
            "config key `finetune.task_embedding`: reading {}",
            path.display()
        )
    })?;
    let e = tensors.get(EMBEDDING_KEY).with_context(|| {
        format!(
            "config key `finetune.task_embedding`: {} has no tensor `{EMBEDDING_KEY}` (it has {:?})",
            path.display(),
            tensors.keys().collect::<Vec<_>>()
        )
    })?;
    if e.dims() != [dim] {
        anyhow::bail!(
            "config key `finetune.task_embedding`: `{EMBEDDING_KEY}` in {} has shape {:?}; the \
             model's prompts take [{dim}]",
            path.display(),
            e.dims()
        );
    }
    Ok(e.to_dtype(candle_core::DType::F32)?)
}
