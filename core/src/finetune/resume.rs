//! Fine-tuning's resumable state: after every epoch the checkpointer keeps the model, the
//! optimiser and the progress (history, the selection so far, the head's dropout stream) in
//! `checkpoints/step_…/`, beside the delivered `checkpoints/task_selected/`. The data order of an
//! epoch is a function of (seed, epoch), so a run resumed after epoch k goes on exactly as an
//! uninterrupted one. Once the test split is read, the step checkpoints go: the delivered model
//! is what a finished run keeps.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::task_model::TaskModel;
use super::train::EpochMetrics;
use crate::checkpoint::backbone::{read_tensors, save_tensors};
use crate::checkpoint::manifest::{Selection, OPTIMIZER_FILE};
use crate::checkpoint::{Checkpointer, Manifest};
use crate::config::Config;
use crate::optim::AdamW;
use crate::plugin_host::Plugin;

/// Where a run stands after an epoch.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Progress {
    pub epochs_done: usize,
    pub step: usize,
    pub history: Vec<EpochMetrics>,
    pub selected: Option<Selection>,
    /// The head's dropout stream, so a resumed run draws the masks an uninterrupted one would.
    pub dropout_position: u64,
    /// Under data parallelism, each rank's position in its own dropout stream (by rank).
    #[serde(default)]
    pub dropout_positions: Vec<u64>,
}

/// Whether this process writes the run folder (rank 0 of a data-parallel job, or the only one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    This,
    Another,
}

/// The checkpointer of a run: continued only with the same settings, the same starting backbone
/// (its folder, step and config hash) and the same plugin file.
pub fn checkpointer(
    dir: PathBuf,
    config: &Config,
    backbone_dir: Option<&Path>,
    plugin: &Plugin,
) -> Result<Checkpointer> {
    let backbone = match backbone_dir {
        Some(dir) => {
            let m = Manifest::read(dir)?;
            serde_json::json!({ "path": dir, "step": m.step, "config_hash": m.config_hash })
        }
        None => serde_json::Value::Null,
    };
    let settings = ResumeSettings {
        config: config.clone(),
        backbone,
        plugin_sha256: plugin.sha256.clone(),
    };
    Checkpointer::typed(dir, 1, &settings)
}

/// What a fine-tuning checkpoint must share with the run that continues it.
#[derive(Serialize, Deserialize)]
struct ResumeSettings {
    config: Config,
    backbone: serde_json::Value,
    plugin_sha256: String,
}

/// Writes the state after an epoch: the model, the optimiser and the progress.
pub fn save(
    checkpointer: &Checkpointer,
    at: &Progress,
    model: &TaskModel,
    opt: &AdamW,
    config_hash: &str,
) -> Result<PathBuf> {
    let progress = Progress {
        dropout_position: model.head.state.dropout_position(),
        ..at.clone()
    };
    let step = at.step as u64;
    checkpointer.save(step, &progress, |staging| {
        model.write_into(staging, step, config_hash, None)?;
        save_tensors(staging, OPTIMIZER_FILE, &opt.state_dict()?)
    })
}

/// The progress of the newest checkpoint, with the model and optimiser restored from it; a fresh
/// start when the run has none. A folder that holds a delivered model but nothing to resume (a
/// finished run) is refused, and a delivered model that lags the checkpoint (a run stopped
/// between the two writes) is delivered again from it by the folder's `writer`.
pub fn resume(
    checkpointer: &Checkpointer,
    model: &TaskModel,
    opt: &mut AdamW,
    selected_dir: &Path,
    (config_hash, writer): (&str, Writer),
) -> Result<Progress> {
    let Some(saved) = checkpointer.latest::<Progress>()? else {
        if selected_dir.exists() {
            bail!(
                "{} holds a delivered model but no checkpoint to resume from (a finished run, or \
                 one from an older clasp): pass --overwrite to start afresh",
                selected_dir.parent().unwrap_or(selected_dir).display()
            );
        }
        println!(
            "--resume: no checkpoint in {} yet, starting at epoch 1",
            checkpointer.dir().display()
        );
        return Ok(Progress::default());
    };
    let at = saved.progress;
    model.load_weights(&saved.dir)?;
    let moments_path = saved.dir.join(OPTIMIZER_FILE);
    let moments = read_tensors(&moments_path, model.backbone.store.device())?;
    opt.load_state_dict(&moments)
        .with_context(|| moments_path.display().to_string())?;
    let rank = crate::distributed::world().rank;
    let position = at.dropout_positions.get(rank).copied();
    model
        .head
        .state
        .set_dropout_position(position.unwrap_or(at.dropout_position));
    let delivered = Manifest::read(selected_dir).ok().and_then(|m| m.selection);
    if delivered != at.selected {
        match &at.selected {
            // Selected in the epoch this checkpoint ends: its weights are the ones to deliver.
            // (Written by the run folder's writer alone: rank 0 of a data-parallel job.)
            Some(s) if s.epoch == at.epochs_done => {
                if writer == Writer::This {
                    model.save(selected_dir, at.step as u64, config_hash, Some(s.clone()))?;
                }
            }
            _ => bail!(
                "{} does not hold the epoch {} selected (it holds {:?}): pass --overwrite to \
                 start afresh",
                selected_dir.display(),
                at.selected.as_ref().map_or(0, |s| s.epoch),
                delivered.map(|s| s.epoch)
            ),
        }
    }
    println!(
        "resumed from {} (after epoch {}, step {})",
        saved.dir.display(),
        at.epochs_done,
        at.step
    );
    Ok(at)
}
