//! A pre-training checkpoint: everything an uninterrupted run would still hold at that step.
//!
//! `model.safetensors` is the EMA teacher's backbone — what DINO and SOLIDER release and what
//! fine-tuning loads (`clasp finetune --backbone step_…/`). Beside it: the student backbone, the
//! student's heads, the teacher's DINO head, the optimiser moments and DINO's centre, plus the
//! data layout the step count refers to. The data order and every augmentation are functions of
//! (seed, epoch, position), so (step, steps per epoch) pins the next batch exactly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};

use super::model::{EmaTeacher, Heads};
use crate::backbone::Backbone;
use crate::checkpoint::backbone::{read_tensors, save_with};
use crate::checkpoint::manifest::OPTIMIZER_FILE;
use crate::checkpoint::Manifest;

pub const STUDENT_FILE: &str = "student.safetensors";
pub const HEADS_FILE: &str = "heads.safetensors";
pub const TEACHER_HEAD_FILE: &str = "teacher_head.safetensors";
pub const DINO_STATE_FILE: &str = "dino_state.safetensors";

/// The training state besides the weights.
pub struct Progress {
    pub step: usize,
    pub steps_per_epoch: usize,
    pub images: usize,
    pub center: Tensor,
}

fn u32_tensor(v: usize) -> Result<Tensor> {
    Ok(Tensor::new(&[v as u32], &Device::Cpu)?)
}

pub fn save(
    target: &Path,
    student: &Backbone,
    heads: &Heads,
    teacher: &EmaTeacher,
    optimizer: BTreeMap<String, Tensor>,
    progress: &Progress,
) -> Result<PathBuf> {
    let mut manifest = student.manifest.clone();
    manifest.step = progress.step as u64;
    let dino_state = BTreeMap::from([
        ("center".to_string(), progress.center.clone()),
        (
            "steps_per_epoch".to_string(),
            u32_tensor(progress.steps_per_epoch)?,
        ),
        ("images".to_string(), u32_tensor(progress.images)?),
    ]);
    save_with(
        target,
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

fn scalar(t: &BTreeMap<String, Tensor>, key: &str, file: &Path) -> Result<usize> {
    let v = t
        .get(key)
        .with_context(|| format!("{} has no `{key}`", file.display()))?
        .to_vec1::<u32>()?;
    Ok(v[0] as usize)
}

/// Restores a checkpoint into freshly built models (same architecture); returns the progress and
/// the optimiser state. A checkpoint written for another dataset size is refused.
pub fn load(
    dir: &Path,
    student: &Backbone,
    heads: &Heads,
    teacher: &EmaTeacher,
    steps_per_epoch: usize,
    images: usize,
) -> Result<(Progress, BTreeMap<String, Tensor>)> {
    let device = student.store.device();
    let manifest = Manifest::read(dir)?;
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
    let state = read_tensors(&state_path, device)?;
    let saved_spe = scalar(&state, "steps_per_epoch", &state_path)?;
    let saved_images = scalar(&state, "images", &state_path)?;
    if saved_spe != steps_per_epoch || saved_images != images {
        bail!(
            "{}: written for {saved_images} images in {saved_spe} steps per epoch, but the data \
             and batch size now give {images} images in {steps_per_epoch}: resuming would not \
             continue the same run (start a new run, or restore `pretrain.data` / \
             `pretrain.batch_size`)",
            dir.display()
        );
    }
    let center = state
        .get("center")
        .with_context(|| format!("{} has no `center`", state_path.display()))?
        .clone();
    let optimizer = read_tensors(&dir.join(OPTIMIZER_FILE), device)?;
    Ok((
        Progress {
            step: manifest.step as usize,
            steps_per_epoch,
            images,
            center,
        },
        optimizer,
    ))
}
