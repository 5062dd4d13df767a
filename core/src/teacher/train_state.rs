//! What an interrupted `clasp teacher train` resumes from: after every epoch but the last, the
//! CLIP's weights, the optimiser's moments, the step and the epoch reports so far go into a
//! checkpoint in a hidden sibling of the output folder (`.<out>.resume/step_…/`, written by the
//! shared checkpointer). Each epoch's data order, augmentation and caption choice come from a
//! generator seeded by (seed, epoch), so a run resumed after epoch k goes on exactly as an
//! uninterrupted one would.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::Device;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::clip::Clip;
use super::train::EpochReport;
use crate::checkpoint::atomic::AtomicDir;
use crate::checkpoint::backbone::{read_tensors, save_tensors};
use crate::checkpoint::Checkpointer;
use crate::optim::adamw::AdamW;

const WEIGHTS: &str = "model.safetensors";
const OPTIMIZER: &str = "optimizer.safetensors";

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
}

/// The checkpointer of a run writing `out`: its state after each epoch in [`resume_dir`], the
/// last one kept, continued only by a run of the same `settings` (the teacher settings that
/// change what is computed, the seed and the tokenizer's size).
pub fn checkpointer(out: &Path, settings: &serde_json::Value) -> Result<Checkpointer> {
    Checkpointer::new(resume_dir(out), 1, settings)
}

/// Removes the resume folder (the teacher's own) with whatever is in it.
pub fn remove(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(())
}

/// Writes the CLIP's weights and the optimiser's moments into a checkpoint's staging folder.
pub fn write(staging: &AtomicDir, clip: &Clip, opt: &AdamW) -> Result<()> {
    save_tensors(staging, WEIGHTS, &clip.store.tensors())?;
    save_tensors(staging, OPTIMIZER, &opt.state_dict()?)
}

/// Restores the weights and optimiser state saved in checkpoint `dir`.
pub fn load(dir: &Path, clip: &Clip, opt: &mut AdamW) -> Result<()> {
    let weights_path = dir.join(WEIGHTS);
    let weights = read_tensors(&weights_path, clip.store.device())?;
    clip.store
        .load_strict(&weights)
        .with_context(|| weights_path.display().to_string())?;
    let moments = read_tensors(&dir.join(OPTIMIZER), &Device::Cpu)?;
    opt.load_state_dict(&moments)
        .with_context(|| dir.join(OPTIMIZER).display().to_string())
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
    }
}
