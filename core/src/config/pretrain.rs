//! Settings of CLIP-guided pre-training (`[pretrain]`, DESIGN §5): data, budget, DINO, the
//! pseudo-label losses and their weights.

use std::num::NonZeroUsize;

use serde::{Deserialize, Serialize};

use crate::data::augment::MultiCropConfig;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PretrainSettings {
    /// Folder of unlabeled person crops (searched recursively).
    #[serde(deserialize_with = "super::optional_path::none_when_empty")]
    pub data: Option<std::path::PathBuf>,
    /// Pseudo-label cache of those images (`clasp label --images <data>`); unset: DINO only.
    #[serde(deserialize_with = "super::optional_path::none_when_empty")]
    pub labels: Option<std::path::PathBuf>,
    /// A backbone checkpoint the student starts from (e.g. `clasp init --from-timm`), its
    /// prompts excepted (they are seeded as this run configures them); unset: random weights.
    #[serde(deserialize_with = "super::optional_path::none_when_empty")]
    pub init: Option<std::path::PathBuf>,
    pub epochs: usize,
    pub batch_size: usize,
    /// Batches per optimiser step (gradient accumulation): the step, DINO's centre and the EMA
    /// teacher move once per K batches, as for one batch of K × `batch_size`; an epoch's last
    /// batches that make no whole step are left out, as a short last batch is.
    pub accumulate: NonZeroUsize,
    /// Loader threads.
    pub workers: usize,
    /// Multi-crop views: two global, `n_local` local.
    pub crops: MultiCropConfig,
    pub dino: DinoSettings,
    /// λ_ssl, λ_part, λ_attr of the total loss.
    pub ssl_weight: f64,
    pub part_weight: f64,
    pub attr_weight: f64,
    /// λ_MI of Mod-Squad's task–expert mutual-information loss on PC-MoE's global gates (0:
    /// off): −λ_MI · MI(task; expert) pushes each task's gate to few experts and the tasks apart.
    pub gate_mi_weight: f64,
    /// Patches whose part label has a lower teacher confidence are ignored.
    pub part_min_confidence: f32,
    /// Attributes with |p − ½| below this margin are ignored.
    pub attr_margin: f32,
    /// Write `metrics.jsonl` every this many steps.
    pub log_every: usize,
}

impl Default for PretrainSettings {
    fn default() -> Self {
        Self {
            data: None,
            labels: None,
            init: None,
            epochs: 10,
            batch_size: 32,
            accumulate: NonZeroUsize::MIN,
            workers: 2,
            crops: MultiCropConfig::default(),
            dino: DinoSettings::default(),
            ssl_weight: 1.0,
            part_weight: 0.5,
            attr_weight: 0.5,
            gate_mi_weight: 0.0,
            part_min_confidence: 0.3,
            attr_margin: 0.1,
            log_every: 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DinoSettings {
    /// Prototypes K of the projection head.
    pub out_dim: usize,
    pub hidden_dim: usize,
    pub bottleneck_dim: usize,
    /// Keep the last layer's weight norm fixed at 1 (DINO's `norm_last_layer`).
    pub norm_last_layer: bool,
    pub student_temp: f64,
    /// Teacher temperature after the warm-up …
    pub teacher_temp: f64,
    /// … linearly from this one over `warmup_teacher_temp_epochs`.
    pub warmup_teacher_temp: f64,
    pub warmup_teacher_temp_epochs: usize,
    pub center_momentum: f64,
    /// EMA momentum of the teacher, cosine from `momentum` to `momentum_end` over the run.
    pub momentum: f64,
    pub momentum_end: f64,
    /// Epochs during which the last layer is frozen (DINO's stabiliser).
    pub freeze_last_layer_epochs: usize,
}

impl Default for DinoSettings {
    fn default() -> Self {
        Self {
            out_dim: 4096,
            hidden_dim: 1024,
            bottleneck_dim: 256,
            norm_last_layer: true,
            student_temp: 0.1,
            teacher_temp: 0.04,
            warmup_teacher_temp: 0.04,
            warmup_teacher_temp_epochs: 0,
            center_momentum: 0.9,
            momentum: 0.996,
            momentum_end: 1.0,
            freeze_last_layer_epochs: 1,
        }
    }
}
