//! The reid task's settings (its `[task]` table).

use clasp_sdk::{ensure_in, Pool, Result, Settings, MAX_WIDTH};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ranking::Distance;

/// The head between the pooled feature and the losses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Head {
    /// A BN neck on the pooled feature.
    Bnneck,
    /// A linear layer to `reduction_dim`, then the BN neck (fast-reid's reduction head).
    Reduction,
}

/// Which feature retrieval uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NeckFeature {
    /// After the neck's batch norm.
    After,
    /// Before the neck's batch norm.
    Before,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ReidSettings {
    /// Head variant.
    pub head: Head,
    /// Head input: cls, mean (of the patch tokens) or cls+mean.
    pub pool: Pool,
    /// Feature width of the reduction head.
    pub reduction_dim: usize,
    /// Retrieval feature.
    pub neck_feat: NeckFeature,
    /// Label smoothing of the identity loss.
    pub label_smoothing: f64,
    /// Weight of the identity loss.
    pub id_loss_weight: f64,
    /// Weight of the triplet loss.
    pub triplet_weight: f64,
    /// Triplet margin.
    pub margin: f64,
    /// Soft-margin triplet (softplus) instead of the hinge at `margin`.
    pub soft_margin: bool,
    /// Unit-normalise features before the triplet loss.
    pub triplet_norm: bool,
    /// Evaluation distance.
    pub distance: Distance,
    /// k-reciprocal re-ranking of the evaluation (holds the (nq+ng)² distances).
    pub rerank: bool,
    /// Re-ranking k1.
    pub rerank_k1: usize,
    /// Re-ranking k2.
    pub rerank_k2: usize,
    /// Re-ranking weight of the original distance.
    pub rerank_lambda: f64,
    /// Training images.
    pub train_dir: String,
    /// Query images.
    pub query_dir: String,
    /// Gallery images.
    pub gallery_dir: String,
    /// Validation queries: identities apart from training and test, on which epochs and
    /// recipes are chosen (a missing folder: no validation split).
    pub val_query_dir: String,
    /// Validation gallery.
    pub val_gallery_dir: String,
}

impl Default for ReidSettings {
    fn default() -> Self {
        Self {
            head: Head::Bnneck,
            pool: Pool::Cls,
            reduction_dim: 256,
            neck_feat: NeckFeature::After,
            label_smoothing: 0.1,
            id_loss_weight: 1.0,
            triplet_weight: 1.0,
            margin: 0.3,
            soft_margin: false,
            triplet_norm: false,
            distance: Distance::Cosine,
            rerank: false,
            rerank_k1: 20,
            rerank_k2: 6,
            rerank_lambda: 0.3,
            train_dir: "bounding_box_train".into(),
            query_dir: "query".into(),
            gallery_dir: "bounding_box_test".into(),
            val_query_dir: "val/query".into(),
            val_gallery_dir: "val/bounding_box_test".into(),
        }
    }
}

impl Settings for ReidSettings {
    fn validate(&self) -> Result<()> {
        if self.head == Head::Reduction {
            ensure_in("reduction_dim", self.reduction_dim, 1, MAX_WIDTH)?;
        }
        if self.rerank {
            ensure_in("rerank_k1", self.rerank_k1, 1, 10_000)?;
            ensure_in("rerank_k2", self.rerank_k2, 1, 10_000)?;
        }
        ensure_in("label_smoothing", self.label_smoothing, 0.0, 1.0)
    }
}
