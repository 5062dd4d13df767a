//! A task head's state on the host: trainable parameters and saved buffers, named by the plugin.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};

use crate::model::ParamStore;

/// Parameters live under `head.` so a task checkpoint keeps backbone and head apart.
pub const HEAD_PREFIX: &str = "head.";

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
                .map(|(k, v)| (format!("buffers.{k}"), v)),
        );
        out
    }
}
