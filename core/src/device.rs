//! Device selection from `run.device` (`cpu`, `cuda`, `cuda:N`).

use anyhow::{bail, Context, Result};
use candle_core::Device;
use serde::{Deserialize, Serialize};

/// Where a run computes, as `run.device` spells it: `cpu`, `cuda` (the first GPU) or `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceSpec {
    Cpu,
    /// The CUDA device of this ordinal.
    Cuda(usize),
}

impl std::str::FromStr for DeviceSpec {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            s => match s.strip_prefix("cuda:") {
                Some(n) => Ok(Self::Cuda(n.parse().with_context(|| {
                    format!("`{s}`: the CUDA ordinal is not a number")
                })?)),
                None => bail!("unknown device `{s}` (use cpu, cuda or cuda:N)"),
            },
        }
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = String;

    fn try_from(s: String) -> std::result::Result<Self, String> {
        s.parse().map_err(|e: anyhow::Error| format!("{e:#}"))
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl From<DeviceSpec> for String {
    fn from(d: DeviceSpec) -> String {
        d.to_string()
    }
}

/// The candle device of `spec`; CUDA needs a build with the `cuda` feature.
/// The device of this process of `world`: on CUDA, rank r of a machine takes the GPU `local
/// rank` places after the configured one (`cuda` on 4 ranks of a machine: GPUs 0–3).
pub fn device_for_rank(spec: &DeviceSpec, world: &crate::distributed::World) -> Result<Device> {
    match *spec {
        DeviceSpec::Cuda(first) => parse_device(&DeviceSpec::Cuda(first + world.local_rank)),
        DeviceSpec::Cpu => parse_device(spec),
    }
}

pub fn parse_device(spec: &DeviceSpec) -> Result<Device> {
    match *spec {
        DeviceSpec::Cpu => Ok(Device::Cpu),
        DeviceSpec::Cuda(ordinal) => {
            if !candle_core::utils::cuda_is_available() {
                bail!("`{spec}` requested but this build has no CUDA support (rebuild with `--features cuda`)");
            }
            Device::new_cuda(ordinal).with_context(|| format!("opening CUDA device {ordinal}"))
        }
    }
}
