//! A plugin's head on the host: builds it, runs its forward, loss and decode through the vtable,
//! and names the plugin and the call in every error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use abi_stable::std_types::{ROption, RStr};
use anyhow::{anyhow, Result};
use candle_core::{Device, Tensor};
use clasp_sdk::abi::{Features, Metric, NamedPath, NamedTensor, Record, Split};

use super::head::HeadState;
use super::loader::Plugin;
use super::ops::{host_ops, CallCtx};

/// A head's outputs for a batch, by name, in the order its `forward` gave them.
#[derive(Debug, Clone)]
pub struct HeadOutputs(pub Vec<(String, Tensor)>);

impl HeadOutputs {
    /// The first output (a single-output head's only one); callers that need a particular
    /// output look it up by name.
    pub fn first(&self) -> Result<&Tensor> {
        self.0
            .first()
            .map(|(_, t)| t)
            .ok_or_else(|| anyhow!("the head returned no output"))
    }

    /// The outputs detached from the graph (for decoding).
    fn detach(&self) -> Self {
        Self(
            self.0
                .iter()
                .map(|(n, t)| (n.clone(), t.detach()))
                .collect(),
        )
    }

    fn insert(&self, ctx: &CallCtx) -> Vec<NamedTensor> {
        self.0
            .iter()
            .map(|(name, t)| NamedTensor {
                name: name.as_str().into(),
                id: ctx.insert(t.clone()),
            })
            .collect()
    }
}

pub struct TaskHead {
    pub plugin: Plugin,
    /// The task's resolved configuration, as the JSON object plugins receive.
    pub config: String,
    pub state: HeadState,
    pub device: Device,
    pub dim: usize,
}

impl TaskHead {
    /// Creates the head's parameters (`build_head`) with nothing learnt from data: heads whose
    /// shape or loss depends on the training split need [`Self::build_for_training`].
    pub fn build(
        plugin: Plugin,
        config: String,
        dim: usize,
        device: &Device,
        seed: u64,
    ) -> Result<Self> {
        let head = Self::empty(plugin, config, dim, device, seed);
        head.build_head()?;
        Ok(head)
    }

    /// The head for fine-tuning: the plugin first keeps what it needs of the training split in
    /// buffers (`prepare`), then creates its parameters (`build_head`), which may read them.
    pub fn build_for_training(
        plugin: Plugin,
        config: String,
        dim: usize,
        device: &Device,
        seed: u64,
        train: &[Record],
    ) -> Result<Self> {
        let head = Self::empty(plugin, config, dim, device, seed);
        head.prepare(train)?;
        head.build_head()?;
        Ok(head)
    }

    /// The head saved as `tensors` (parameters and buffers): buffers are restored before
    /// `build_head` runs, so it builds the same shapes as when trained; then everything loads
    /// strictly.
    pub fn restore(
        plugin: Plugin,
        config: String,
        dim: usize,
        device: &Device,
        tensors: BTreeMap<String, Tensor>,
    ) -> Result<Self> {
        let head = Self::empty(plugin, config, dim, device, 0);
        head.state.restore_buffers(&tensors)?;
        head.build_head()?;
        head.state.load_strict(tensors)?;
        Ok(head)
    }

    fn empty(plugin: Plugin, config: String, dim: usize, device: &Device, seed: u64) -> Self {
        Self {
            plugin,
            config,
            state: HeadState::new(device, seed),
            device: device.clone(),
            dim,
        }
    }

    fn build_head(&self) -> Result<()> {
        let ctx = CallCtx::new(&self.state, &self.device);
        (self.plugin.module.build_head())(
            host_ops(),
            ctx.handle(),
            RStr::from(self.config.as_str()),
            self.dim as u64,
        )
        .into_result()
        .map_err(|e| self.plugin.call_error("build_head", e))
    }

    /// The head's outputs for features `cls` `[B, d]` and `patches` `[B, d, h, w]`.
    pub fn forward(&self, cls: &Tensor, patches: &Tensor, training: bool) -> Result<HeadOutputs> {
        let ctx = CallCtx::new(&self.state, &self.device);
        let features = Features {
            cls: ctx.insert(cls.clone()),
            patches: ctx.insert(patches.clone()),
            dim: self.dim as u64,
            training,
        };
        let named = (self.plugin.module.forward())(
            host_ops(),
            ctx.handle(),
            RStr::from(self.config.as_str()),
            features,
        )
        .into_result()
        .map_err(|e| self.plugin.call_error("forward", e))?;
        if named.is_empty() {
            return Err(self.plugin.call_error("forward", "returned no output"));
        }
        let outputs = named
            .iter()
            .map(|n| Ok((n.name.to_string(), ctx.get(n.id)?)))
            .collect::<Result<_>>()
            .map_err(|e| self.plugin.call_error("forward", e))?;
        Ok(HeadOutputs(outputs))
    }

    pub fn loss(&self, outputs: &HeadOutputs, targets: &[Record]) -> Result<Tensor> {
        let ctx = CallCtx::new(&self.state, &self.device);
        let named = outputs.insert(&ctx);
        let id = (self.plugin.module.loss())(
            host_ops(),
            ctx.handle(),
            RStr::from(self.config.as_str()),
            named.as_slice().into(),
            targets.into(),
        )
        .into_result()
        .map_err(|e| self.plugin.call_error("loss", e))?;
        let loss = ctx.get(id).map_err(|e| self.plugin.call_error("loss", e))?;
        if loss.elem_count() != 1 {
            return Err(self.plugin.call_error(
                "loss",
                format!("returned shape {:?}, not a scalar", loss.dims()),
            ));
        }
        Ok(loss.flatten_all()?.squeeze(0)?)
    }

    pub fn decode(&self, outputs: &HeadOutputs) -> Result<Vec<Record>> {
        let ctx = CallCtx::new(&self.state, &self.device);
        let named = outputs.detach().insert(&ctx);
        let recs = (self.plugin.module.decode())(
            host_ops(),
            ctx.handle(),
            RStr::from(self.config.as_str()),
            named.as_slice().into(),
        )
        .into_result()
        .map_err(|e| self.plugin.call_error("decode", e))?;
        Ok(recs.into_vec())
    }

    pub fn evaluate(&self, predictions: &[Record], targets: &[Record]) -> Result<Vec<Metric>> {
        evaluate(&self.plugin, &self.config, predictions, targets)
    }
}

impl TaskHead {
    /// Lets the plugin keep what it needs of the training split in the head's buffers
    /// (`prepare`); plugins without it keep nothing.
    pub fn prepare(&self, train: &[Record]) -> Result<()> {
        let ROption::RSome(prepare) = self.plugin.module.prepare() else {
            return Ok(());
        };
        let ctx = CallCtx::new(&self.state, &self.device);
        prepare(
            host_ops(),
            ctx.handle(),
            RStr::from(self.config.as_str()),
            train.into(),
        )
        .into_result()
        .map_err(|e| self.plugin.call_error("prepare", e))
    }

    /// The plugin's one-line reading of a prediction (its values when it offers none).
    pub fn describe(&self, prediction: &Record) -> Result<String> {
        match self.plugin.module.describe() {
            ROption::RSome(describe) => describe(RStr::from(self.config.as_str()), prediction)
                .into_result()
                .map(|s| s.into_string())
                .map_err(|e| self.plugin.call_error("describe", e)),
            _ => Ok(format!("{:?}", prediction.values.as_slice())),
        }
    }

    /// The plugin's flip test: `prediction` merged with `mirrored` (the prediction for the
    /// mirrored image); `None` when the plugin offers no flip test.
    pub fn merge_flip(&self, prediction: &Record, mirrored: &Record) -> Result<Option<Record>> {
        let ROption::RSome(merge) = self.plugin.module.merge_flip() else {
            return Ok(None);
        };
        let out = merge(RStr::from(self.config.as_str()), prediction, mirrored)
            .into_result()
            .map_err(|e| self.plugin.call_error("merge_flip", e))?;
        Ok(out.into_option())
    }

    /// Asks the plugin to draw the rank list of the query `image` against `gallery` into `out`;
    /// `false` when the plugin draws none.
    pub fn visualize_ranking(
        &self,
        image: &Path,
        prediction: &Record,
        gallery: &[Record],
        out: &Path,
    ) -> Result<bool> {
        let ROption::RSome(draw) = self.plugin.module.visualize_ranking() else {
            return Ok(false);
        };
        let (image, out) = (image.display().to_string(), out.display().to_string());
        draw(
            RStr::from(self.config.as_str()),
            RStr::from(image.as_str()),
            prediction,
            gallery.into(),
            RStr::from(out.as_str()),
        )
        .into_result()
        .map_err(|e| self.plugin.call_error("visualize_ranking", e))
    }

    /// Asks the plugin to draw `prediction` over `image` into the PNG `out`; `false` when the
    /// plugin draws nothing.
    pub fn visualize(&self, image: &Path, prediction: &Record, out: &Path) -> Result<bool> {
        let ROption::RSome(visualize) = self.plugin.module.visualize() else {
            return Ok(false);
        };
        let (image, out) = (image.display().to_string(), out.display().to_string());
        visualize(
            RStr::from(self.config.as_str()),
            RStr::from(image.as_str()),
            prediction,
            RStr::from(out.as_str()),
        )
        .into_result()
        .map_err(|e| self.plugin.call_error("visualize", e))
    }
}

/// The plugin's metrics of `predictions` against `targets`.
pub fn evaluate(
    plugin: &Plugin,
    config: &str,
    predictions: &[Record],
    targets: &[Record],
) -> Result<Vec<Metric>> {
    let m = (plugin.module.evaluate())(RStr::from(config), predictions.into(), targets.into())
        .into_result()
        .map_err(|e| plugin.call_error("evaluate", e))?;
    Ok(m.into_vec())
}

/// The samples of `split` as the plugin lists them.
pub fn dataset(plugin: &Plugin, config: &str, root: &Path, split: Split) -> Result<Vec<Record>> {
    let root = root.display().to_string();
    let recs = (plugin.module.dataset())(RStr::from(config), RStr::from(root.as_str()), split)
        .into_result()
        .map_err(|e| plugin.call_error("dataset", e))?;
    Ok(recs.into_vec())
}

/// Metrics of result files another system wrote, read by the plugin (`evaluate_files`); `inputs`
/// are (what the file is, path) pairs as the plugin's spec names them (`result_files`).
pub fn evaluate_files(
    plugin: &Plugin,
    config: &str,
    inputs: &[(String, PathBuf)],
) -> Result<Vec<Metric>> {
    let absent = || {
        plugin.call_error(
            "evaluate_files",
            "the task scores no result files of other systems",
        )
    };
    let ROption::RSome(evaluate_files) = plugin.module.evaluate_files() else {
        return Err(absent());
    };
    let inputs: Vec<NamedPath> = inputs
        .iter()
        .map(|(name, path)| NamedPath {
            name: name.as_str().into(),
            path: path.display().to_string().into(),
        })
        .collect();
    let m = evaluate_files(RStr::from(config), inputs.as_slice().into())
        .into_result()
        .map_err(|e| plugin.call_error("evaluate_files", e))?;
    m.into_option().map(|m| m.into_vec()).ok_or_else(absent)
}

/// The plugin's `flip`: a task's targets after its image is mirrored, callable from loader
/// threads.
#[derive(Clone)]
pub struct RecordFlip {
    pub plugin: Plugin,
    pub config: String,
}

impl std::fmt::Debug for RecordFlip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecordFlip({})", self.plugin.name())
    }
}

impl RecordFlip {
    pub fn new(plugin: &Plugin, config: &str) -> Self {
        Self {
            plugin: plugin.clone(),
            config: config.to_string(),
        }
    }

    /// The mirrored targets of `record` (loaded at `size` `[H, W]`); `None` when the task is not
    /// trained on mirrored images.
    pub fn apply(&self, record: &Record, [h, w]: [usize; 2]) -> Result<Option<Record>> {
        let ROption::RSome(flip) = self.plugin.module.flip() else {
            return Ok(None);
        };
        let out = flip(RStr::from(self.config.as_str()), record, h as u32, w as u32)
            .into_result()
            .map_err(|e| {
                self.plugin
                    .call_error("flip", format!("{} ({})", e, record.image))
            })?;
        Ok(out.into_option())
    }
}
