//! Heads that grow the backbone's patch-token map into a finer grid, for dense tasks (parsing,
//! pose): `deconv` stacks transposed convolutions (4×4, stride 2, as SimpleBaseline and ViTPose's
//! classic decoder), `nearest` stacks nearest ×2 upsampling + 3×3 convolutions. Each step doubles
//! the grid and is followed by batch norm and ReLU; both train end to end (no bilinear
//! resampling, which the host cannot differentiate).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::fail;
use crate::host::{Host, Init, Result, Tensor};
use crate::settings::{ensure_in, MAX_WIDTH};

/// How each step of an [`UpsampleHead`] doubles the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Upsampling {
    /// Transposed 4×4 convolution, stride 2.
    Deconv,
    /// Nearest ×2, then a 3×3 convolution.
    Nearest,
}

/// The upsampling part of a dense head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpsampleHead {
    pub kind: Upsampling,
    /// Doubling steps: 2 turns a stride-16 patch map into a stride-4 grid.
    pub steps: usize,
    /// Channels of every step.
    pub channels: usize,
}

impl UpsampleHead {
    /// Checks the task settings `upsample_steps` and `channels` a head is built from: each step
    /// doubles the map, and 5 take 16-pixel patches past the input's own size.
    pub fn check(&self) -> Result<()> {
        ensure_in("upsample_steps", self.steps, 0, 5)?;
        ensure_in("channels", self.channels, 1, MAX_WIDTH)
    }

    /// `[B, channels, h·2^steps, w·2^steps]` from a `[B, in_channels, h, w]` map; parameters are
    /// named `up{i}.*` and created on first use.
    pub fn apply<'h>(
        &self,
        host: &'h Host,
        x: Tensor<'h>,
        in_channels: usize,
        training: bool,
    ) -> Result<Tensor<'h>> {
        let mut x = x;
        let mut c_in = in_channels;
        let c = self.channels;
        for i in 0..self.steps {
            x = match self.kind {
                Upsampling::Deconv => x.conv_transpose2d(
                    host.param(
                        &format!("up{i}.weight"),
                        &[c_in, c, 4, 4],
                        Init::KaimingUniform,
                    )?,
                    None,
                    2,
                    1,
                    0,
                )?,
                Upsampling::Nearest => nearest2x(host, x)?.conv2d(
                    host.param(
                        &format!("up{i}.weight"),
                        &[c, c_in, 3, 3],
                        Init::KaimingUniform,
                    )?,
                    None,
                    1,
                    1,
                )?,
            };
            x = x
                .batch_norm(
                    Some(host.param(&format!("up{i}.bn.weight"), &[c], Init::Ones)?),
                    Some(host.param(&format!("up{i}.bn.bias"), &[c], Init::Zeros)?),
                    host.buffer(&format!("up{i}.bn.running_mean"), &[c], Init::Zeros)?,
                    host.buffer(&format!("up{i}.bn.running_var"), &[c], Init::Ones)?,
                    training,
                    0.1,
                    1e-5,
                )?
                .relu()?;
            c_in = c;
        }
        Ok(x)
    }

    /// Channels of the output map for an input of `in_channels`.
    pub fn out_channels(&self, in_channels: usize) -> usize {
        if self.steps == 0 {
            in_channels
        } else {
            self.channels
        }
    }
}

/// Nearest-neighbour ×2 of a `[B, C, h, w]` map, differentiable: each value is broadcast over a
/// 2×2 block.
pub fn nearest2x<'h>(host: &'h Host, x: Tensor<'h>) -> Result<Tensor<'h>> {
    let [b, c, h, w]: [usize; 4] = match x.shape()?.as_slice() {
        [b, c, h, w] => [*b, *c, *h, *w],
        other => fail!("nearest ×2 of shape {other:?}, expected [B, C, h, w]"),
    };
    let ones = host.constant(&[1, 1, 1, 2, 1, 2], &[1.0; 4])?;
    x.reshape(&[b, c, h, 1, w, 1])?
        .mul(ones)?
        .reshape(&[b, c, 2 * h, 2 * w])
}
