//! A task head's state on the host: trainable parameters and saved buffers, named by the plugin.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};

use crate::model::ParamStore;

/// Parameters live under `head.` so a task checkpoint keeps backbone and head apart.
pub const HEAD_PREFIX: &str = "head.";
/// Buffers are saved under this prefix, beside the parameters.
const BUFFER_PREFIX: &str = "buffers.";

pub struct HeadState {
    pub params: ParamStore,
    pub buffers: ParamStore,
}

impl HeadState {
    pub fn new(device: &Device, seed: u64) -> Self {
        Self {
            params: ParamStore::new(device, seed),
            buffers: ParamStore::new(device, seed ^ 0xB0FF),
        }
    }

    /// Parameters and buffers as saved in a task checkpoint.
    pub fn tensors(&self) -> BTreeMap<String, Tensor> {
        let mut out = self.params.tensors();
        out.extend(
            self.buffers
                .tensors()
                .into_iter()
                .map(|(k, v)| (format!("{BUFFER_PREFIX}{k}"), v)),
        );
        out
    }

    /// Puts the buffers among `tensors` (as [`Self::tensors`] saved them) in place before the
    /// head is built, so `build_head` sees what `prepare` once stored (e.g. a class count).
    pub fn restore_buffers(&self, tensors: &BTreeMap<String, Tensor>) -> anyhow::Result<()> {
        for (k, v) in tensors {
            if let Some(name) = k.strip_prefix(BUFFER_PREFIX) {
                self.buffers.insert(name, v)?;
            }
        }
        Ok(())
    }

    /// Loads what [`Self::tensors`] saved; the head must already be built, and any missing or
    /// unexpected tensor is an error that names it.
    pub fn load_strict(&self, tensors: BTreeMap<String, Tensor>) -> anyhow::Result<()> {
        let (buffers, params): (BTreeMap<_, _>, BTreeMap<_, _>) = tensors
            .into_iter()
            .partition(|(k, _)| k.starts_with(BUFFER_PREFIX));
        let buffers = buffers
            .into_iter()
            .map(|(k, v)| (k[BUFFER_PREFIX.len()..].to_string(), v))
            .collect();
        self.params.load_strict(&params)?;
        self.buffers.load_strict(&buffers)
    }
}
