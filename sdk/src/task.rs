//! The trait a plugin author implements.

use std::path::{Path, PathBuf};

use abi_stable::std_types::RString;

pub use crate::abi::SampleStats;
use crate::abi::{Features, PluginSpec, Record, ResultFile, Split};
use crate::host::{Host, Result, Tensor};
use crate::outputs::Outputs;
use crate::settings::Settings;
use crate::Error;

/// Named metric values, in the order a task reports them.
pub type Metrics = Vec<(String, f64)>;

/// Predictions of several named predictors, each one record per sample.
pub type NamedPredictionSets = Vec<(String, Vec<Record>)>;

/// A task's description, in plain Rust types. Its settings are described by
/// [`Task::Config`], not here.
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
    /// The heads a task offers; left empty, the values of its settings' `head` choice.
    pub head_variants: Vec<String>,
    /// (name, what the file is) of each result file `evaluate_files` reads.
    pub result_files: Vec<(String, String)>,
}

impl Spec {
    pub(crate) fn into_abi<S: Settings>(self) -> PluginSpec {
        let s = |v: Vec<String>| v.into_iter().map(RString::from).collect();
        PluginSpec {
            name: self.name.into(),
            version: self.version.into(),
            description: self.description.into(),
            labels: s(self.labels),
            input_size: self.input_size,
            metrics: s(self.metrics),
            primary_metric: self.primary_metric.into(),
            config: crate::settings::schema::<S>().into(),
            head_variants: match self.head_variants.is_empty() {
                true => s(crate::settings::choices_of::<S>("head")),
                false => s(self.head_variants),
            },
            result_files: self
                .result_files
                .into_iter()
                .map(|(name, help)| ResultFile {
                    name: name.into(),
                    help: help.into(),
                })
                .collect(),
        }
    }
}

/// The path of the result file called `name` among `inputs`, or an error naming what is missing.
pub fn input<'a>(inputs: &'a [(String, PathBuf)], name: &str) -> Result<&'a Path> {
    inputs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, p)| p.as_path())
        .ok_or_else(|| {
            let given: Vec<&str> = inputs.iter().map(|(n, _)| n.as_str()).collect();
            Error::config(format!(
                "needs the result file `{name}` (--input {name}=PATH); given: {given:?}"
            ))
        })
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
        return Err(Error::data(format!(
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

/// A downstream task: its description, head, loss, decoding, metrics and data. The plugin holds
/// one instance, made by `Default`.
pub trait Task: Default + Send + Sync + 'static {
    /// The task's settings (its `[task]` table), parsed once per distinct table.
    type Config: Settings;

    fn spec(&self) -> Spec;

    /// Creates the head's parameters (`host.param`) for features of width `dim`. The default
    /// runs `forward` on zero features, which creates every parameter it fetches.
    fn build_head(&self, host: &Host, config: &Self::Config, dim: usize) -> Result<()> {
        let zeros = FeatureMaps::zeros(host, dim)?;
        self.forward(host, config, &zeros).map(|_| ())
    }

    /// The head's outputs for a batch (parameters are fetched again with `host.param`); a
    /// tensor converts into the one output of a head that has one.
    fn forward<'h>(
        &self,
        host: &'h Host,
        config: &Self::Config,
        features: &FeatureMaps<'h>,
    ) -> Result<Outputs<'h>>;

    /// A scalar loss of `outputs` against the batch's `targets`.
    fn loss<'h>(
        &self,
        host: &'h Host,
        config: &Self::Config,
        outputs: &Outputs<'h>,
        targets: &[Record],
    ) -> Result<Tensor<'h>>;

    /// Predictions as plain values, one record per sample.
    fn decode(
        &self,
        host: &Host,
        config: &Self::Config,
        outputs: &Outputs<'_>,
    ) -> Result<Vec<Record>>;

    /// Metrics over a split.
    fn evaluate(
        &self,
        config: &Self::Config,
        predictions: &[Record],
        targets: &[Record],
    ) -> Result<Vec<(String, f64)>>;

    /// The samples of `split` under `root`, in the task's native annotation format.
    fn dataset(&self, config: &Self::Config, root: &Path, split: Split) -> Result<Vec<Record>>;

    /// Draws `prediction` over `image` into the PNG `out`; `None` when the task draws nothing.
    fn visualize(
        &self,
        _config: &Self::Config,
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
    fn prepare(&self, _host: &Host, _config: &Self::Config, _train: &[Record]) -> Result<()> {
        Ok(())
    }

    /// Metrics of predictions another system wrote to files, each named as the spec's
    /// `result_files` declare (`clasp eval --task T --input NAME=PATH`); `None` when the task
    /// reads no such files.
    fn evaluate_files(
        &self,
        _config: &Self::Config,
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
        _config: &Self::Config,
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
        _config: &Self::Config,
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
        _config: &Self::Config,
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
        _config: &Self::Config,
        _predictions: &[Record],
        _targets: &[Record],
    ) -> Option<Result<Vec<SampleStats>>> {
        None
    }

    /// The metrics of `samples`, rows of [`Task::sample_statistics`] — all of them, or a
    /// resample in which a row may appear several times.
    fn metrics_of_samples(
        &self,
        _config: &Self::Config,
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
        _config: &Self::Config,
        _train: &[Record],
        _test: &[Record],
    ) -> Option<Result<NamedPredictionSets>> {
        None
    }

    /// One line a person reads for `prediction`; the default lists its values.
    fn describe(&self, _config: &Self::Config, prediction: &Record) -> Result<String> {
        let values: Vec<String> = prediction
            .values
            .iter()
            .map(|v| format!("{v:.3}"))
            .collect();
        Ok(format!("[{}]", values.join(", ")))
    }
}
