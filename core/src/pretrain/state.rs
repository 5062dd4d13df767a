//! A pre-training checkpoint: everything an uninterrupted run would still hold at that step.
//!
//! `model.safetensors` is the EMA teacher's backbone — what DINO and SOLIDER release and what
//! fine-tuning loads (`clasp finetune --backbone step_…/`). Beside it: the student backbone, the
//! student's heads, the teacher's DINO head, the optimiser moments and DINO's centre; the data
//! layout the step count refers to is in the checkpointer's `progress.json`. The data order and
//! every augmentation are functions of (seed, epoch, position), so (step, steps per epoch) pins
//! the next batch exactly.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::model::{EmaTeacher, Heads};
use crate::backbone::Backbone;
use crate::checkpoint::atomic::AtomicDir;
use crate::checkpoint::backbone::{read_tensors, write_into};
use crate::checkpoint::checkpointer::read_progress;
use crate::checkpoint::manifest::OPTIMIZER_FILE;
use crate::checkpoint::store::PROGRESS_FILE;
use crate::checkpoint::Manifest;

pub const STUDENT_FILE: &str = "student.safetensors";
pub const HEADS_FILE: &str = "heads.safetensors";
pub const TEACHER_HEAD_FILE: &str = "teacher_head.safetensors";
pub const DINO_STATE_FILE: &str = "dino_state.safetensors";

/// Where the run stands, in the checkpoint's `progress.json`: the data layout the step count
/// refers to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub step: usize,
    pub steps_per_epoch: usize,
    pub images: usize,
}

/// The progress of checkpoint `dir`, for tools that read rather than continue it: its
/// `progress.json`, or — written before checkpoints carried one — its manifest's step and the
/// layout then kept in `dino_state.safetensors`.
pub fn progress_of(dir: &Path) -> Result<Progress> {
    if dir.join(PROGRESS_FILE).exists() {
        return read_progress(dir);
    }
    let step = Manifest::read(dir)?.step as usize;
    let path = dir.join(DINO_STATE_FILE);
    let state = read_tensors(&path, &Device::Cpu)?;
    let scalar = |key: &str| -> Result<usize> {
        let t = state.get(key).with_context(|| {
            format!("{} has no `{key}` (and no {PROGRESS_FILE})", path.display())
        })?;
        Ok(t.to_vec1::<u32>()?[0] as usize)
    };
    Ok(Progress {
        step,
        steps_per_epoch: scalar("steps_per_epoch")?,
        images: scalar("images")?,
    })
}

/// Writes the weights (EMA teacher as `model.safetensors`, student, heads, teacher head), the
/// optimiser state and DINO's centre into a checkpoint's staging folder.
pub fn write(
    staging: &AtomicDir,
    student: &Backbone,
    heads: &Heads,
    teacher: &EmaTeacher,
    optimizer: BTreeMap<String, Tensor>,
    center: &Tensor,
    step: usize,
) -> Result<()> {
    let mut manifest = student.manifest.clone();
    manifest.step = step as u64;
    let dino_state = BTreeMap::from([("center".to_string(), center.clone())]);
    write_into(
        staging,
        &teacher.backbone.vit,
        &teacher.backbone.store,
        &[
            (OPTIMIZER_FILE, optimizer),
            (STUDENT_FILE, student.store.tensors()),
            (HEADS_FILE, heads.store.tensors()),
            (TEACHER_HEAD_FILE, teacher.head_store.tensors()),
            (DINO_STATE_FILE, dino_state),
        ],
        &manifest,
    )
}

/// Restores checkpoint `dir`, whose progress is `saved`, into freshly built models (same
/// architecture); returns DINO's centre and the optimiser state. A checkpoint written for
/// another dataset size is refused.
pub fn load(
    dir: &Path,
    saved: &Progress,
    student: &Backbone,
    heads: &Heads,
    teacher: &EmaTeacher,
    (steps_per_epoch, images): (usize, usize),
) -> Result<(Tensor, BTreeMap<String, Tensor>)> {
    if saved.steps_per_epoch != steps_per_epoch || saved.images != images {
        bail!(
            "{}: written for {} images in {} steps per epoch, but the data and batch size now \
             give {images} images in {steps_per_epoch}: resuming would not continue the same run \
             (start a new run, or restore `pretrain.data` / `pretrain.batch_size`)",
            dir.display(),
            saved.images,
            saved.steps_per_epoch
        );
    }
    let device = student.store.device();
    let load_into =
        |store: &crate::model::ParamStore, file: &str, skip_buffers: bool| -> Result<()> {
            let path = dir.join(file);
            let tensors: BTreeMap<String, Tensor> = read_tensors(&path, device)?
                .into_iter()
                .filter(|(k, _)| !(skip_buffers && k.starts_with("prompts.text_embed.")))
                .collect();
            store
                .load_strict(&tensors)
                .with_context(|| format!("loading {}", path.display()))
        };
    load_into(
        &teacher.backbone.store,
        crate::checkpoint::manifest::WEIGHTS_FILE,
        true,
    )?;
    load_into(&student.store, STUDENT_FILE, false)?;
    load_into(&heads.store, HEADS_FILE, false)?;
    load_into(&teacher.head_store, TEACHER_HEAD_FILE, false)?;
    let state_path = dir.join(DINO_STATE_FILE);
    let center = read_tensors(&state_path, device)?
        .remove("center")
        .with_context(|| format!("{} has no `center`", state_path.display()))?;
    let optimizer = read_tensors(&dir.join(OPTIMIZER_FILE), device)?;
    Ok((center, optimizer))
}
