//! What an interrupted `clasp teacher train` resumes from: after every epoch but the last, the
//! CLIP's weights, the optimiser's moments, the step and the epoch reports so far go into a
//! hidden sibling of the output folder (`.<out>.resume/`, written atomically). Each epoch's data
//! order, augmentation and caption choice come from a generator seeded by (seed, epoch), so a
//! run resumed after epoch k goes on exactly as an uninterrupted one would.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::clip::Clip;
use super::train::EpochReport;
use crate::checkpoint::atomic::AtomicDir;
use crate::checkpoint::backbone::read_tensors;
use crate::optim::adamw::AdamW;

const WEIGHTS: &str = "model.safetensors";
const OPTIMIZER: &str = "optimizer.safetensors";
const PROGRESS: &str = "progress.json";

/// The generator of epoch `epoch`'s order, augmentation and captions.
pub fn epoch_rng(seed: u64, epoch: usize) -> ChaCha8Rng {
    // Distinct streams per epoch; the golden-ratio step keeps (seed, epoch) pairs apart.
    ChaCha8Rng::seed_from_u64(seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Where the state of a run writing `out` is kept.
pub fn resume_dir(out: &Path) -> PathBuf {
    let name = out.file_name().map_or_else(
        || "teacher".to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty());
    parent
        .unwrap_or(Path::new("."))
        .join(format!(".{name}.resume"))
}

/// The training state after a finished epoch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Progress {
    /// Epochs finished.
    pub epochs_done: usize,
    pub step: usize,
    pub reports: Vec<EpochReport>,
    /// The settings and seed of the run, as JSON: a resumed run must use the same.
    pub settings: serde_json::Value,
    pub vocab_size: usize,
}

pub fn save(dir: &Path, clip: &Clip, opt: &AdamW, progress: &Progress) -> Result<()> {
    let staging = AtomicDir::begin(dir)?;
    let weights: HashMap<String, Tensor> = clip.store.tensors().into_iter().collect();
    crate::checkpoint::tensor_file::save_tensors(&weights, &staging.path(WEIGHTS))?;
    let moments: HashMap<String, Tensor> = opt.state_dict()?.into_iter().collect();
    crate::checkpoint::tensor_file::save_tensors(&moments, &staging.path(OPTIMIZER))?;
    staging.sync_file(WEIGHTS)?;
    staging.sync_file(OPTIMIZER)?;
    staging.write(PROGRESS, serde_json::to_string_pretty(progress)?.as_bytes())?;
    staging.commit()?;
    Ok(())
}

/// Keys whose values differ between two settings objects (top level).
fn differing_keys(a: &serde_json::Value, b: &serde_json::Value) -> Vec<String> {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return vec!["(settings)".into()];
    };
    let mut keys: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Restores the state in `dir` into `clip` and `opt` when it was saved by a run with the same
/// settings; an error names what differs.
pub fn load(dir: &Path, clip: &Clip, opt: &mut AdamW, expected: &Progress) -> Result<Progress> {
    let path = dir.join(PROGRESS);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let saved: Progress =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let differ = differing_keys(&saved.settings, &expected.settings);
    if !differ.is_empty() || saved.vocab_size != expected.vocab_size {
        bail!(
            "{}: saved by a run with other settings ({}); delete it to start over",
            dir.display(),
            if differ.is_empty() {
                format!(
                    "a tokenizer of {} words, not {}",
                    saved.vocab_size, expected.vocab_size
                )
            } else {
                differ
                    .iter()
                    .map(|k| format!("`teacher.{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
    }
    let weights_path = dir.join(WEIGHTS);
    let weights = read_tensors(&weights_path, clip.store.device())?;
    let report = clip.store.load_report(&weights);
    if !report.missing.is_empty() || !report.unexpected.is_empty() {
        bail!(
            "{}: missing {:?}, unexpected {:?}",
            weights_path.display(),
            report.missing,
            report.unexpected
        );
    }
    clip.store
        .load_matching(&weights)
        .with_context(|| weights_path.display().to_string())?;
    let moments = read_tensors(&dir.join(OPTIMIZER), &Device::Cpu)?;
    opt.load_state_dict(&moments)
        .with_context(|| dir.join(OPTIMIZER).display().to_string())?;
    Ok(saved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn resume_dir_is_a_hidden_sibling_and_epoch_streams_differ() {
        assert_eq!(
            resume_dir(Path::new("runs/teacher")),
            Path::new("runs/.teacher.resume")
        );
        assert_eq!(resume_dir(Path::new("t")), Path::new("./.t.resume"));
        let draw = |seed, epoch| epoch_rng(seed, epoch).gen::<u64>();
        assert_eq!(draw(3, 1), draw(3, 1));
        assert_ne!(draw(3, 1), draw(3, 2));
        assert_ne!(draw(3, 1), draw(4, 1));
        let a = serde_json::json!({"epochs": 10, "lr": 5e-4, "seed": 0});
        let b = serde_json::json!({"epochs": 20, "lr": 5e-4, "seed": 0});
        assert_eq!(differing_keys(&a, &b), vec!["epochs".to_string()]);
    }
}
