//! How a head reads the backbone's features as one vector per image: the CLS token, the mean
//! patch token, or both side by side (the `pool` setting of the reference plugins).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::fail;
use crate::host::{Host, Result, Tensor};
use crate::task::FeatureMaps;

/// The head's input: the CLS token, the mean of the patch tokens, or both side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum Pool {
    #[default]
    #[serde(rename = "cls")]
    Cls,
    #[serde(rename = "mean")]
    Mean,
    #[serde(rename = "cls+mean")]
    ClsMean,
}

impl Pool {
    /// Width of the pooled vector for backbone features of width `dim`.
    pub fn width(self, dim: usize) -> usize {
        if self == Self::ClsMean {
            2 * dim
        } else {
            dim
        }
    }

    /// `[B, width]` from the batch's features.
    pub fn apply<'h>(self, host: &'h Host, f: &FeatureMaps<'h>) -> Result<Tensor<'h>> {
        let mean = || -> Result<Tensor<'h>> {
            let [b, d, h, w]: [usize; 4] = match f.patches.shape()?.as_slice() {
                [b, d, h, w] => [*b, *d, *h, *w],
                other => fail!("patch map of shape {other:?}, expected [B, d, h, w]"),
            };
            f.patches.reshape(&[b, d, h * w])?.mean(2, false)
        };
        match self {
            Self::Cls => Ok(f.cls),
            Self::Mean => mean(),
            Self::ClsMean => host.concat(&[f.cls, mean()?], 1),
        }
    }
}
