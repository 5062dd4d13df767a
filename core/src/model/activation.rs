//! The MLP activation of a transformer (timm's `act_layer`, transformers' `hidden_act`): ViTs
//! from timm use exact GELU, OpenAI's CLIP towers quick GELU.

use anyhow::{bail, Result};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Exact (erf) GELU, PyTorch's `nn.GELU()` default.
    #[default]
    Gelu,
    /// `x · σ(1.702 x)`, OpenAI's original CLIP.
    QuickGelu,
    /// The tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
}

impl Activation {
    /// transformers' `hidden_act` name at config key `key` (named in the error).
    pub fn parse(name: &str, key: &str) -> Result<Self> {
        Ok(match name {
            "quick_gelu" => Self::QuickGelu,
            "gelu" => Self::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Self::GeluTanh,
            other => bail!(
                "config key `{key}` = {other:?}: expected quick_gelu, gelu, gelu_new or \
                 gelu_pytorch_tanh"
            ),
        })
    }

    /// The name configs spell it with.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gelu => "gelu",
            Self::QuickGelu => "quick_gelu",
            Self::GeluTanh => "gelu_tanh",
        }
    }

    pub fn apply(self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::Gelu => crate::ops::gelu(x),
            Self::QuickGelu => crate::ops::quick_gelu(x),
            Self::GeluTanh => x.gelu(),
        }
    }
}

impl std::fmt::Display for Activation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
