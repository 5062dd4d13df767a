//! How a head reads the backbone's features as one vector per image: the CLS token, the mean
//! patch token, or both side by side (the `pool` setting of the reference plugins).

use crate::fail;
use crate::host::{Host, Result, Tensor};
use crate::task::{FeatureMaps, TaskConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    Cls,
    Mean,
    ClsMean,
}

impl Pool {
    /// Help text for a `pool` config entry.
    pub const HELP: &'static str = "head input: cls, mean (of the patch tokens) or cls+mean";

    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "cls" => Ok(Self::Cls),
            "mean" => Ok(Self::Mean),
            "cls+mean" => Ok(Self::ClsMean),
            other => fail!("unknown pool `{other}` (cls, mean, cls+mean)"),
        }
    }

    /// The pooling a task's `pool` setting names.
    pub fn from_config(cfg: &TaskConfig) -> Result<Self> {
        Self::parse(&cfg.str("pool")?)
    }

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
