//! The failure tests' plugin settings: where the plugin panics.

use clasp_sdk::Settings;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where the plugin panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Call {
    #[default]
    Nowhere,
    BuildHead,
    Forward,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct FaultySettings {
    /// The call that panics.
    pub panic_in: Call,
}

impl Settings for FaultySettings {}
