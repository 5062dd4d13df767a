//! The configuration tree with its built-in defaults. Every struct denies unknown keys, so a typo
//! is an error that names the key rather than a silently ignored setting.

use std::num::NonZeroUsize;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub run: RunSettings,
    pub model: ModelSettings,
    pub optim: OptimSettings,
    pub checkpoint: CheckpointSettings,
    pub data: DataSettings,
    pub plugins: PluginSettings,
    pub finetune: FinetuneSettings,
    pub teacher: super::teacher::TeacherSettings,
    pub label: super::teacher::LabelSettings,
    pub pretrain: super::pretrain::PretrainSettings,
    pub probe: super::probe::ProbeSettings,
    /// Settings of the task plugin being fine-tuned (checked against the plugin's schema).
    pub task: toml::Table,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FinetuneSettings {
    /// Dataset root in the task's native format.
    #[serde(deserialize_with = "super::optional_path::none_when_empty")]
    pub data: Option<std::path::PathBuf>,
    pub epochs: usize,
    pub batch_size: usize,
    /// Batches per optimiser step (gradient accumulation): K batches of `batch_size` make the
    /// step one batch of K × `batch_size` makes when the loss is a mean over images (see
    /// `optim/accumulate.rs` for the losses where it is not), activations held for one batch.
    pub accumulate: NonZeroUsize,
    pub warmup_epochs: usize,
    /// Evaluate every this many epochs (and always after the last).
    pub eval_every: usize,
    /// Loader threads.
    pub workers: usize,
    /// safetensors file with the text embedding (`embedding`, `[text_dim]`) that seeds a new task
    /// prompt; unset: the teacher's, or a fixed vector hashed from the task's description.
    #[serde(deserialize_with = "super::optional_path::none_when_empty")]
    pub task_embedding: Option<std::path::PathBuf>,
    /// How training batches are drawn: `shuffle`, or `identity` (P identities × K images, the
    /// identity being each record's first integer: what batch-hard triplet losses need).
    pub sampler: BatchOrder,
    /// K of the `identity` sampler; P is `batch_size / K`.
    pub instances_per_identity: usize,
    /// Random horizontal flips in training; unset: on when the task's plugin mirrors its
    /// targets (its `flip`), off otherwise.
    pub flip: Option<bool>,
    /// Flip test at evaluation: each image is also predicted mirrored and the plugin merges the
    /// two predictions (its `merge_flip`: averaged parsing scores, averaged reid features).
    pub flip_test: bool,
}

/// How `finetune.sampler` draws training batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchOrder {
    /// A random permutation of the training set each epoch.
    Shuffle,
    /// P identities × K images each (the identity is each record's first integer): what
    /// batch-hard triplet losses need.
    Identity,
}

impl Default for FinetuneSettings {
    fn default() -> Self {
        Self {
            data: None,
            epochs: 20,
            batch_size: 32,
            accumulate: NonZeroUsize::MIN,
            warmup_epochs: 1,
            eval_every: 1,
            workers: 2,
            task_embedding: None,
            sampler: BatchOrder::Shuffle,
            instances_per_identity: 4,
            flip: None,
            flip_test: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PluginSettings {
    /// Directories (or files) searched for task plugins, besides `CLASP_PLUGIN_PATH`.
    pub dirs: Vec<String>,
    /// Required sha256 per plugin file name; a mismatch is refused before the plugin is loaded.
    pub sha256: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSettings {
    /// Run directory name under `dir`.
    pub name: String,
    pub dir: String,
    pub seed: u64,
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: crate::device::DeviceSpec,
    /// `f32`, or `bf16`: the backbone's (and pre-training heads') matrix products in bf16 in
    /// pretrain, finetune, probe, eval, predict and embed; weights and optimiser state stay f32,
    /// the teacher (`label`) and plugin heads run f32 ([`crate::model::precision`]).
    pub precision: crate::model::Precision,
}

impl Default for RunSettings {
    fn default() -> Self {
        Self {
            name: "default".into(),
            dir: "runs".into(),
            seed: 0,
            device: crate::device::DeviceSpec::Cpu,
            precision: crate::model::Precision::F32,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSettings {
    /// nano | tiny | small | base
    pub preset: crate::model::config::Preset,
    /// Input size [H, W], multiples of the patch size.
    pub img_size: [usize; 2],
    /// Side of the square patches (16 as in timm's ViTs; 8 suits small crops).
    pub patch_size: usize,
    /// A layer norm before the first block, as CLIP's vision tower has (`clasp init
    /// --from-clip` sets it).
    pub pre_norm: bool,
    /// `gelu` (timm's ViTs), `quick_gelu` (OpenAI's CLIP) or `gelu_tanh`.
    pub activation: crate::model::Activation,
    /// Epsilon of every layer norm (timm's ViTs 1e-6, CLIP 1e-5).
    pub norm_eps: f64,
    pub prompts: PromptSettings,
    pub moe: MoeSettings,
}

impl Default for ModelSettings {
    fn default() -> Self {
        Self {
            preset: crate::model::config::Preset::Small,
            img_size: [256, 128],
            patch_size: 16,
            pre_norm: false,
            activation: crate::model::Activation::Gelu,
            norm_eps: 1e-6,
            prompts: PromptSettings::default(),
            moe: MoeSettings::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromptSettings {
    pub enabled: bool,
    /// Prompt tokens per task (m).
    pub num_tokens: usize,
    /// Width of the CLIP text embedding that seeds each prompt.
    pub text_dim: usize,
    /// Tasks created with the model (pre-training tasks of DESIGN §5).
    pub tasks: Vec<String>,
    /// CLIP folder whose text embedding of each task's description seeds its prompt (e_t); unset:
    /// a fixed vector hashed from the description. Checkpoints keep e_t, so only new prompts
    /// need it.
    #[serde(deserialize_with = "super::optional_path::none_when_empty")]
    pub teacher: Option<std::path::PathBuf>,
}

impl Default for PromptSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            num_tokens: 4,
            text_dim: 512,
            tasks: vec!["ssl".into(), "part".into(), "attr".into()],
            teacher: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MoeSettings {
    pub enabled: bool,
    pub num_experts: usize,
    /// Expert hidden width as a multiple of the embedding width.
    pub expert_ratio: f64,
    /// Temperature τ of the global gate.
    pub temperature: f64,
    /// Keep the k largest global gates; unset keeps all (dense). `0` is read as unset, the
    /// spelling of earlier configs.
    #[serde(deserialize_with = "dense_when_zero")]
    pub top_k: Option<usize>,
    /// Which blocks are PC-MoE: "all", "last:N", or a list such as "8,9,10,11".
    pub blocks: super::model::BlockSpec,
    /// Gate folding drops experts whose global gate is at most this.
    pub fold_threshold: f64,
}

/// `model.moe.top_k`: a number of experts, with `0` (and absence) meaning dense.
fn dense_when_zero<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    Ok(Option::<usize>::deserialize(d)?.filter(|k| *k > 0))
}

impl Default for MoeSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            num_experts: 4,
            expert_ratio: 1.0,
            temperature: 1.0,
            top_k: None,
            blocks: super::model::BlockSpec::All,
            fold_threshold: 1e-4,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimSettings {
    pub lr: f64,
    pub min_lr: f64,
    pub warmup_steps: usize,
    pub weight_decay: f64,
    pub weight_decay_end: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Global gradient-norm clip; 0 disables.
    pub clip_grad: f64,
    /// Layer-wise LR decay (1.0 = off; fine-tuning typically 0.65–0.75).
    pub layer_decay: f64,
    /// LR multiplier of the heads, fast-reid's `HEADS_LR_FACTOR`: a task plugin's head when
    /// fine-tuning; the part and attribute heads in pre-training (DINO's projection head keeps
    /// the backbone's LR, as DINO trains it). A head starts from nothing and may learn faster
    /// than the backbone it reads.
    pub head_lr_scale: f64,
    /// LR multiplier of PC-MoE's gate weights (W_g, W_c) in pre-training: the gates read a task
    /// summary much smaller than the activations, so at the backbone's LR they barely move.
    pub gate_lr_scale: f64,
}

impl OptimSettings {
    /// The optimiser's own settings (betas, eps, clipping; 0 disables clipping).
    pub fn adamw(&self) -> crate::optim::AdamWConfig {
        crate::optim::AdamWConfig {
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            max_grad_norm: (self.clip_grad > 0.0).then_some(self.clip_grad),
        }
    }
}

impl Default for OptimSettings {
    fn default() -> Self {
        Self {
            lr: 5e-4,
            min_lr: 1e-6,
            warmup_steps: 100,
            weight_decay: 0.04,
            weight_decay_end: 0.4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            clip_grad: 3.0,
            layer_decay: 1.0,
            head_lr_scale: 1.0,
            gate_lr_scale: 1.0,
        }
    }
}

/// How much unreadable input a job tolerates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataSettings {
    /// Unreadable images are skipped and counted; past this fraction of a pass (an epoch, an
    /// evaluation, a feature extraction, a labelling run) the job stops instead: so many bad
    /// files mean a wrong folder or format, not a few damaged images.
    pub max_skipped_fraction: f64,
}

impl Default for DataSettings {
    fn default() -> Self {
        Self {
            max_skipped_fraction: 0.1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointSettings {
    /// Save every N optimiser steps (and at the end).
    pub every: usize,
    /// Keep the newest K checkpoints.
    pub keep_last: usize,
}

impl Default for CheckpointSettings {
    fn default() -> Self {
        Self {
            every: 500,
            keep_last: 3,
        }
    }
}
