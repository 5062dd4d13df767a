//! Device selection from `run.device` (`cpu`, `cuda`, `cuda:N`).

use anyhow::{bail, Context, Result};
use candle_core::Device;

pub fn parse_device(spec: &str) -> Result<Device> {
    match spec {
        "cpu" => Ok(Device::Cpu),
        s if s == "cuda" || s.starts_with("cuda:") => {
            let ordinal = match s.strip_prefix("cuda:") {
                Some(n) => n
                    .parse::<usize>()
                    .with_context(|| format!("`{s}`: the CUDA ordinal is not a number"))?,
                None => 0,
            };
            if !candle_core::utils::cuda_is_available() {
                bail!("`{s}` requested but this build has no CUDA support (rebuild with `--features cuda`)");
            }
            Device::new_cuda(ordinal).with_context(|| format!("opening CUDA device {ordinal}"))
        }
        other => bail!("unknown device `{other}` (use cpu, cuda or cuda:N)"),
    }
}
