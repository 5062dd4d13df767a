//! The parsing task's settings (its `[task]` table).

use clasp_sdk::upsample::Upsampling;
use clasp_sdk::{Result, Settings, UpsampleHead};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ParsingSettings {
    /// Head variant: each step doubles the patch grid, then batch norm and ReLU.
    pub head: Upsampling,
    /// Doubling steps of the head (2: stride-16 patches → stride-4 scores).
    pub upsample_steps: usize,
    /// Channels of each upsampling step.
    pub channels: usize,
    /// LIP split trained on.
    pub train_split: String,
    /// LIP split that epochs and recipes are chosen on (no `{split}_id.txt`: none).
    pub val_split: String,
    /// LIP split scored once, after selection (real LIP: its `val`).
    pub test_split: String,
}

impl Default for ParsingSettings {
    fn default() -> Self {
        Self {
            head: Upsampling::Deconv,
            upsample_steps: 2,
            channels: 128,
            train_split: "train".into(),
            val_split: "val".into(),
            test_split: "test".into(),
        }
    }
}

impl ParsingSettings {
    pub fn upsampling(&self) -> UpsampleHead {
        UpsampleHead {
            kind: self.head,
            steps: self.upsample_steps,
            channels: self.channels,
        }
    }
}

impl Settings for ParsingSettings {
    fn validate(&self) -> Result<()> {
        self.upsampling().check()
    }
}
