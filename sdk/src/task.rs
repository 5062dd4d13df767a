//! The trait a plugin author implements, and the configuration it receives.

use std::path::{Path, PathBuf};

use abi_stable::std_types::RString;
use serde_json::{Map, Value};

pub use crate::abi::SampleStats;
use crate::abi::{ConfigEntry, Features, PluginSpec, Record};
use crate::host::{Host, Result, Tensor};
use crate::Error;

/// Predictions of several named predictors, each one record per sample.
pub type NamedPredictionSets = Vec<(String, Vec<Record>)>;

/// A task's description, in plain Rust types.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    pub name: String,
    pub version: String,
    /// The sentence that seeds the task prompt ("recognise the attributes of a person").
    pub description: String,
    pub labels: Vec<String>,
    /// [H, W]
    pub input_size: [u32; 2],
    pub metrics: Vec<String>,
    pub primary_metric: String,
    /// (key, default as a TOML value, help).
    pub config: Vec<(String, String, String)>,
    pub head_variants: Vec<String>,
}

impl Spec {
    pub(crate) fn into_abi(self) -> PluginSpec {
        let s = |v: Vec<String>| v.into_iter().map(RString::from).collect();
        PluginSpec {
            name: self.name.into(),
            version: self.version.into(),
            description: self.description.into(),
            labels: s(self.labels),
            input_size: self.input_size,
            metrics: s(self.metrics),
            primary_metric: self.primary_metric.into(),
            config: self
                .config
                .into_iter()
                .map(|(key, default, help)| ConfigEntry {
                    key: key.into(),
                    default: default.into(),
                    help: help.into(),
                })
                .collect(),
            head_variants: s(self.head_variants),
        }
    }
}

/// The task's configuration (its `[task]` table, defaults filled in by the host).
#[derive(Debug, Clone, Default)]
pub struct TaskConfig(pub Map<String, Value>);

impl TaskConfig {
    pub fn parse(json: &str) -> Result<Self> {
        match serde_json::from_str::<Value>(json) {
            Ok(Value::Object(m)) => Ok(Self(m)),
            Ok(other) => Err(Error(format!("task config must be a table, got {other}"))),
            Err(e) => Err(Error(format!("task config is not valid JSON: {e}"))),
        }
    }

    fn get(&self, key: &str) -> Result<&Value> {
        self.0
            .get(key)
            .ok_or_else(|| Error(format!("task config has no key `{key}`")))
    }

    pub fn str(&self, key: &str) -> Result<String> {
        match self.get(key)? {
            Value::String(s) => Ok(s.clone()),
            v => Err(Error(format!("task config `{key}` = {v} is not a string"))),
        }
    }

    pub fn f64(&self, key: &str) -> Result<f64> {
        self.get(key)?
            .as_f64()
            .ok_or_else(|| Error(format!("task config `{key}` is not a number")))
    }

    pub fn usize(&self, key: &str) -> Result<usize> {
        self.get(key)?
            .as_u64()
            .map(|v| v as usize)
            .ok_or_else(|| Error(format!("task config `{key}` is not a non-negative integer")))
    }

    /// The widest layer a head setting may ask for ([`Self::usize_in`]'s usual bound).
    pub const MAX_WIDTH: usize = 16_384;

    /// A size setting within `[min, max]`: a zero width fails deep inside a layer, and an
    /// absurd one exhausts memory before any message.
    pub fn usize_in(&self, key: &str, min: usize, max: usize) -> Result<usize> {
        let v = self.usize(key)?;
        if !(min..=max).contains(&v) {
            return Err(Error(format!(
                "task config `{key}` = {v} is outside [{min}, {max}]"
            )));
        }
        Ok(v)
    }

    pub fn bool(&self, key: &str) -> Result<bool> {
        self.get(key)?
            .as_bool()
            .ok_or_else(|| Error(format!("task config `{key}` is not a boolean")))
    }
}

/// A stable resampling group for a sample known only by its image (FNV-1a of the name): the same
/// image gets the same group in every run, so results scored on one split line up.
pub fn group_of_image(image: &str) -> u64 {
    image.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Fails unless there is one prediction per target: the first check of every `evaluate`.
pub fn ensure_paired(predictions: &[Record], targets: &[Record]) -> Result<()> {
    if predictions.len() != targets.len() {
        return Err(Error(format!(
            "{} predictions for {} targets",
            predictions.len(),
            targets.len()
        )));
    }
    Ok(())
}

/// Backbone features of a batch, as tensors of this call.
pub struct FeatureMaps<'h> {
    /// `[B, d]`
    pub cls: Tensor<'h>,
    /// `[B, d, h, w]`
    pub patches: Tensor<'h>,
    pub dim: usize,
    pub training: bool,
}

impl<'h> FeatureMaps<'h> {
    /// All-zero features of one image with a 2×2 patch map: what `build_head` runs a head on so
    /// that every parameter (created on first use) exists.
    pub fn zeros(host: &'h Host, dim: usize) -> Result<Self> {
        Ok(Self {
            cls: host.constant(&[1, dim], &vec![0.0; dim])?,
            patches: host.constant(&[1, dim, 2, 2], &vec![0.0; 4 * dim])?,
            dim,
            training: false,
        })
    }

    pub(crate) fn new(host: &'h Host, f: Features) -> Self {
        Self {
            cls: host.tensor(f.cls),
            patches: host.tensor(f.patches),
            dim: f.dim as usize,
            training: f.training,
        }
    }
}

/// A downstream task: its description, head, loss, decoding, metrics and data.
pub trait Task: Send + Sync + 'static {
    fn new() -> Self
    where
        Self: Sized;

    fn spec(&self) -> Spec;

    /// Creates the head's parameters with `host.param` for features of width `dim`.
    fn build_head(&self, host: &Host, config: &TaskConfig, dim: usize) -> Result<()>;

    /// The head's output for a batch (parameters are fetched again with `host.param`).
    fn forward<'h>(
        &self,
        host: &'h Host,
        config: &TaskConfig,
        features: &FeatureMaps<'h>,
    ) -> Result<Tensor<'h>>;

    /// A scalar loss of `output` against the batch's `targets`.
    fn loss<'h>(
        &self,
        host: &'h Host,
        config: &TaskConfig,
        output: Tensor<'h>,
        targets: &[Record],
    ) -> Result<Tensor<'h>>;

    /// Predictions as plain values, one record per sample.
    fn decode(&self, host: &Host, config: &TaskConfig, output: Tensor<'_>) -> Result<Vec<Record>>;

    /// Metrics over a split.
    fn evaluate(
        &self,
        config: &TaskConfig,
        predictions: &[Record],
        targets: &[Record],
    ) -> Result<Vec<(String, f64)>>;

    /// The samples of `split` under `root`, in the task's native annotation format.
    fn dataset(&self, config: &TaskConfig, root: &Path, split: &str) -> Result<Vec<Record>>;

    /// Draws `prediction` over `image` into the PNG `out`; `None` when the task draws nothing.
    fn visualize(
        &self,
        _config: &TaskConfig,
        _image: &Path,
        _prediction: &Record,
        _out: &Path,
    ) -> Option<Result<()>> {
        None
    }

    /// What the head needs of the training split (class count, positive ratios), kept in its
    /// buffers (`host.buffer` + `host.assign`) so it travels with the head into its checkpoint.
    /// Fine-tuning calls it once, before `build_head`, which may read those buffers; a head
    /// loaded from a checkpoint gets its buffers back before `build_head` instead. The default
    /// keeps nothing.
    fn prepare(&self, _host: &Host, _config: &TaskConfig, _train: &[Record]) -> Result<()> {
        Ok(())
    }

    /// Metrics of predictions another system wrote to files, named as `clasp eval` passes them
    /// (`results` + `gt`, `features`, `pred_dir` + `gt_dir`, `pred` + `gt`); `None` when the
    /// task reads no such files.
    fn evaluate_files(
        &self,
        _config: &TaskConfig,
        _inputs: &[(String, PathBuf)],
    ) -> Option<Result<Vec<(String, f64)>>> {
        None
    }

    /// The targets of `record`, as the host loaded them for an image of `size` `[H, W]` (label
    /// maps as `values`, see [`Record`]), after that image is mirrored left–right: a task
    /// reverses its label rows and swaps left/right classes, mirrors and swaps keypoints, or —
    /// when a flip changes nothing (identities, attributes) — returns the record as it is.
    /// `None` (the default): the task is not trained on mirrored images.
    fn flip(
        &self,
        _config: &TaskConfig,
        _record: &Record,
        _size: [usize; 2],
    ) -> Option<Result<Record>> {
        None
    }

    /// The flip test: `prediction` for an image merged with `mirrored`, the prediction for its
    /// mirror image (un-mirrored and averaged, left and right swapped back). `None` (the
    /// default): the task offers no flip test.
    fn merge_flip(
        &self,
        _config: &TaskConfig,
        _prediction: &Record,
        _mirrored: &Record,
    ) -> Option<Result<Record>> {
        None
    }

    /// A retrieval task's rank list: the query `image` with its `prediction` beside the closest
    /// `gallery` predictions (each `image` names its file), drawn into the PNG `out`. `None`
    /// (the default): the task draws no rank lists.
    fn visualize_ranking(
        &self,
        _config: &TaskConfig,
        _image: &Path,
        _prediction: &Record,
        _gallery: &[Record],
        _out: &Path,
    ) -> Option<Result<()>> {
        None
    }

    /// Per-sample statistics of a split's predictions against their `targets`: one row per
    /// scored sample (a retrieval query, an image) with the group it is resampled with (the
    /// person), such that [`Task::metrics_of_samples`] of all rows gives what `evaluate` gives.
    /// The host draws confidence intervals from them (a bootstrap over groups) without
    /// predicting again. `None` (the default): the task's results come without intervals.
    fn sample_statistics(
        &self,
        _config: &TaskConfig,
        _predictions: &[Record],
        _targets: &[Record],
    ) -> Option<Result<Vec<SampleStats>>> {
        None
    }

    /// The metrics of `samples`, rows of [`Task::sample_statistics`] — all of them, or a
    /// resample in which a row may appear several times.
    fn metrics_of_samples(
        &self,
        _config: &TaskConfig,
        _samples: &[SampleStats],
    ) -> Option<Result<Vec<(String, f64)>>> {
        None
    }

    /// Predictions for the `test` samples made without looking at any image — from the `train`
    /// targets (label maps loaded as for `loss`) and, where a predictor is named so, from a
    /// coarse fact of each test target (a "view-aware" pose): the levels a model must beat to
    /// show it uses the image. Named, in the order they are reported. `None` (the default):
    /// the task names no such level.
    fn blind_predictions(
        &self,
        _config: &TaskConfig,
        _train: &[Record],
        _test: &[Record],
    ) -> Option<Result<NamedPredictionSets>> {
        None
    }

    /// One line a person reads for `prediction`; the default lists its values.
    fn describe(&self, _config: &TaskConfig, prediction: &Record) -> Result<String> {
        let values: Vec<String> = prediction
            .values
            .iter()
            .map(|v| format!("{v:.3}"))
            .collect();
        Ok(format!("[{}]", values.join(", ")))
    }
}
