//! The attribute task's settings (its `[task]` table).

use clasp_sdk::{ensure_in, Pool, Result, Settings, MAX_WIDTH};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The head on the pooled feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Head {
    /// One linear layer to the attribute logits.
    Linear,
    /// Linear → ReLU → dropout → linear.
    Mlp,
}

/// How the binary cross entropy weighs positives and negatives of an attribute whose positive
/// ratio in the training split is p.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Weighting {
    /// DeepMAR: exp(1−p) on positives, exp(p) on negatives.
    Deepmar,
    /// 1/2p and 1/2(1−p): the loss's best threshold is mA's 0.5.
    Balanced,
    /// Unweighted.
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AttributeSettings {
    /// Head variant.
    pub head: Head,
    /// Head input: cls, mean (of the patch tokens) or cls+mean.
    pub pool: Pool,
    /// Hidden width of the mlp head.
    pub hidden: usize,
    /// Dropout before the mlp head's last layer.
    pub dropout: f64,
    /// BCE weights from each attribute's positive ratio p.
    pub weighting: Weighting,
    /// Training table under the dataset root.
    pub train_table: String,
    /// Validation table under the dataset root (epochs and recipes are chosen on it; a missing
    /// file means no validation split).
    pub val_table: String,
    /// Test table under the dataset root (scored once, after selection).
    pub test_table: String,
}

impl Default for AttributeSettings {
    fn default() -> Self {
        Self {
            head: Head::Linear,
            pool: Pool::Cls,
            hidden: 512,
            dropout: 0.1,
            weighting: Weighting::Deepmar,
            train_table: "train.csv".into(),
            val_table: "val.csv".into(),
            test_table: "test.csv".into(),
        }
    }
}

impl Settings for AttributeSettings {
    fn validate(&self) -> Result<()> {
        if self.head == Head::Mlp {
            ensure_in("hidden", self.hidden, 1, MAX_WIDTH)?;
            // p = 1 would scale the kept units by 1 / (1 − p).
            ensure_in("dropout", self.dropout, 0.0, 0.999)?;
        }
        Ok(())
    }
}
