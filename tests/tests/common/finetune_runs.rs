//! `clasp finetune` runs of a nano ViT on small synthetic sets, and the weights they deliver.

use std::path::Path;
use std::process::Command;

use candle_core::{DType, Device};

use super::plugin_libs::{clasp_exe, library};

/// A synthetic dataset of 6 people × 3 images at 64×32 (its `attributes/` set for the attribute
/// task).
pub fn attribute_data() -> tempfile::TempDir {
    super::task_data::synth(6, 3, 3, 2, [64, 32])
}

/// The first image an attribute set's split table (`train.csv`, `val.csv`, …) lists, and the
/// table's text.
pub fn first_listed_image(table: &Path) -> (String, String) {
    let text = std::fs::read_to_string(table).unwrap();
    let first = text.lines().nth(1).unwrap().split(',').next().unwrap();
    (first.to_string(), text)
}

/// `clasp finetune --task attribute` of a nano ViT at 64×32 with batches of 2 on `data`, runs
/// under `runs`, and further `--set`s.
pub fn nano_attribute_finetune(data: &Path, runs: &Path, sets: &[&str]) -> std::process::Output {
    nano_attribute_finetune_cmd(data, runs, sets)
        .output()
        .unwrap()
}

pub fn nano_attribute_finetune_cmd(data: &Path, runs: &Path, sets: &[&str]) -> Command {
    let mut cmd = Command::new(clasp_exe());
    nano_finetune_args(&mut cmd, "attribute", data, runs, sets);
    cmd
}

/// The arguments and environment of `clasp finetune --task TASK` of a nano ViT at 64×32 with
/// batches of 2 on `data`, runs under `runs`, further `--set`s, and the task's plugin alone on
/// the plugin path.
pub fn nano_finetune_args(cmd: &mut Command, task: &str, data: &Path, runs: &Path, sets: &[&str]) {
    cmd.args(["finetune", "--task", task, "--data"]).arg(data);
    let fixed = [
        "model.preset=\"nano\"".to_string(),
        "model.img_size=[64, 32]".to_string(),
        "finetune.batch_size=2".to_string(),
        format!("run.dir=\"{}\"", runs.display()),
    ];
    for set in fixed.iter().map(String::as_str).chain(sets.iter().copied()) {
        cmd.args(["--set", set]);
    }
    cmd.env(
        "CLASP_PLUGIN_PATH",
        library(&format!("clasp_plugin_{task}")),
    );
}

/// The delivered model's tensors (backbone and head) of run `name` under `runs`, flattened.
pub fn delivered_weights(runs: &Path, name: &str) -> Vec<(String, Vec<f32>)> {
    let dir = runs.join(name).join("checkpoints/task_selected");
    let mut out = Vec::new();
    for file in ["model.safetensors", "head.safetensors"] {
        let tensors = candle_core::safetensors::load(dir.join(file), &Device::Cpu).unwrap();
        let mut tensors: Vec<_> = tensors.into_iter().collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        for (k, t) in tensors {
            let v = t.to_dtype(DType::F32).unwrap().flatten_all().unwrap();
            out.push((format!("{file}:{k}"), v.to_vec1::<f32>().unwrap()));
        }
    }
    out
}

/// The largest difference between two runs' delivered tensors whose names `keep` accepts.
pub fn max_weight_gap(
    a: &[(String, Vec<f32>)],
    b: &[(String, Vec<f32>)],
    keep: impl Fn(&str) -> bool,
) -> f32 {
    assert_eq!(a.len(), b.len(), "the runs deliver different tensors");
    a.iter()
        .zip(b)
        .filter(|((k, _), _)| keep(k))
        .flat_map(|((ka, va), (kb, vb))| {
            assert_eq!(ka, kb);
            va.iter().zip(vb).map(|(x, y)| (x - y).abs())
        })
        .fold(0f32, f32::max)
}
