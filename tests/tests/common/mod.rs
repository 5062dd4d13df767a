//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod finetune_runs;
pub mod plugin_libs;
pub mod task_data;

use std::collections::BTreeMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use clasp_core::model::{ParamStore, Vit, VitConfig};
use clasp_core::task_embedding::hashed_text_embedding;

/// The values of `key` on every line of a run folder's `metrics.jsonl`.
pub fn logged(run: &std::path::Path, key: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()[key].clone())
        .collect()
}

/// Whether a finished command succeeded, and its stdout and stderr.
pub fn outcome(o: std::process::Output) -> (bool, String) {
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), log)
}

/// A finished command's stdout and stderr, asserting that it succeeded (the log says why not).
pub fn succeeded(o: std::process::Output) -> String {
    let (ok, log) = outcome(o);
    assert!(ok, "{log}");
    log
}

/// A backbone's patch map `[B, d, h, w]` as timm's and transformers' tokens `[B, h·w, d]`
/// (row-major patch order).
pub fn patch_tokens(patches: &Tensor) -> Tensor {
    let (b, d, h, w) = patches.dims4().unwrap();
    patches
        .reshape((b, d, h * w))
        .unwrap()
        .transpose(1, 2)
        .unwrap()
}

/// `mpirun`, allowed to run as root and on fewer cores than ranks (CI machines).
pub fn mpirun() -> std::process::Command {
    let mut cmd = std::process::Command::new("mpirun");
    cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1");
    cmd
}

/// `mpirun -np 2 clasp`.
pub fn mpirun_two() -> std::process::Command {
    let mut cmd = mpirun();
    cmd.args(["-np", "2"]).arg(plugin_libs::clasp_exe());
    cmd
}

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// Tensors of a fixture file under `prefix.`, with the prefix removed.
pub fn fixture_tensors(name: &str, prefix: &str) -> BTreeMap<String, Tensor> {
    let all = candle_core::safetensors::load(fixture(name), &Device::Cpu).expect("fixture loads");
    all.into_iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(&format!("{prefix}."))
                .map(|s| (s.to_string(), v))
        })
        .collect()
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    (a.to_dtype(DType::F64).unwrap() - b.to_dtype(DType::F64).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

pub const TASKS: [&str; 3] = ["ssl", "part", "attr"];

/// The nano preset with prompts and PC-MoE on every block, tasks ssl/part/attr.
pub fn nano_clasp(cfg: VitConfig, seed: u64, dtype: DType) -> (Vit, ParamStore) {
    let store = ParamStore::with_dtype(&Device::Cpu, seed, dtype);
    let mut vit = Vit::new(&cfg, &store).expect("model builds");
    let text_dim = cfg.prompts.as_ref().map(|p| p.text_dim).unwrap_or(0);
    if text_dim > 0 {
        for t in TASKS {
            vit.add_task(t, &hashed_text_embedding(t, text_dim).unwrap())
                .unwrap();
        }
    }
    (vit, store)
}

pub fn nano_clasp_config() -> VitConfig {
    VitConfig::preset(clasp_core::model::Preset::Nano).with_clasp_defaults()
}

/// Deterministic pseudo-random values in [-1, 1) of shape `[b, c, h, w]`, global RNG untouched.
pub fn images(b: usize, c: usize, h: usize, w: usize, dtype: DType, seed: u64) -> Tensor {
    let n = b * c * h * w;
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let v: Vec<f32> = (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
        })
        .collect();
    Tensor::from_vec(v, (b, c, h, w), &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}
