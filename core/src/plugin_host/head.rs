//! A task head's state on the host: trainable parameters and saved buffers, named by the plugin.

use std::collections::BTreeMap;
use std::sync::Mutex;

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::model::ParamStore;

/// Parameters live under `head.` so a task checkpoint keeps backbone and head apart.
pub const HEAD_PREFIX: &str = "head.";
/// Buffers are saved under this prefix, beside the parameters.
const BUFFER_PREFIX: &str = "buffers.";

pub struct HeadState {
    pub params: ParamStore,
    pub buffers: ParamStore,
    /// Dropout masks come from here, so a seeded run repeats exactly.
    dropout_rng: Mutex<ChaCha8Rng>,
}

impl HeadState {
    pub fn new(device: &Device, seed: u64) -> Self {
        Self {
            params: ParamStore::new(device, seed),
            buffers: ParamStore::new(device, seed ^ 0xB0FF),
            dropout_rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed ^ 0xD50F)),
        }
    }

    /// A dropout mask for `shape`: 0 with probability `p`, else `1 / (1 − p)`.
    pub fn dropout_mask(
        &self,
        shape: &[usize],
        p: f64,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let keep = 1.0 - p;
        let scale = (1.0 / keep) as f32;
        let n: usize = shape.iter().product();
        let mut rng = self.dropout_rng.lock().unwrap_or_else(|e| e.into_inner());
        let mask: Vec<f32> = (0..n)
            .map(|_| if rng.gen_bool(keep) { scale } else { 0.0 })
            .collect();
        Tensor::from_vec(mask, shape, device)
    }

    /// How far the dropout stream has run (a resumed run continues it from there).
    pub fn dropout_position(&self) -> u64 {
        let rng = self.dropout_rng.lock().unwrap_or_else(|e| e.into_inner());
        rng.get_word_pos() as u64
    }

    /// Draws masks from stream `stream` of the same seed (rank r of a data-parallel job takes
    /// stream r, so ranks mask their different samples independently; rank 0 keeps stream 0).
    pub fn set_dropout_stream(&self, stream: u64) {
        let mut rng = self.dropout_rng.lock().unwrap_or_else(|e| e.into_inner());
        rng.set_stream(stream);
    }

    pub fn set_dropout_position(&self, position: u64) {
        let mut rng = self.dropout_rng.lock().unwrap_or_else(|e| e.into_inner());
        rng.set_word_pos(position as u128);
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
