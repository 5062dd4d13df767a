//! The root module a task plugin exports.

// The exports' signatures are spelt out in the struct (abi_stable's derive checks their layout
// field by field; it does not see through type aliases), and the prefix type it generates
// repeats them.
#![allow(clippy::type_complexity)]

use abi_stable::library::RootModule;
use abi_stable::package_version_strings;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{ROption, RResult, RSlice, RStr, RString, RVec};
use abi_stable::StableAbi;

use crate::abi::{
    Features, HostCtx, HostOpsRef, Metric, NamedPath, NamedPredictions, NamedTensor, PluginError,
    PluginSpec, Record, SampleStats, Split, TensorId,
};

/// Every function returns `RErr` with a kind and a message on failure, panics included: the host
/// names the plugin and the call. `config` is the task's resolved settings as a JSON object.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = TaskPluginRef)))]
#[sabi(missing_field(panic))]
pub struct TaskPlugin {
    /// [`crate::abi::INTERFACE_VERSION`] of the SDK the plugin was built with.
    pub interface_version: u32,
    pub spec: extern "C" fn() -> RResult<PluginSpec, PluginError>,
    /// Parses and checks the task's settings: a wrong value is named by its key.
    pub check_config: extern "C" fn(config: RStr<'_>) -> RResult<(), PluginError>,
    /// Creates the head's parameters through `host.param` (features of width `dim`).
    pub build_head: extern "C" fn(
        host: HostOpsRef,
        ctx: HostCtx,
        config: RStr<'_>,
        dim: u64,
    ) -> RResult<(), PluginError>,
    /// The head's output for a batch of backbone features.
    pub forward: extern "C" fn(
        host: HostOpsRef,
        ctx: HostCtx,
        config: RStr<'_>,
        features: Features,
    ) -> RResult<RVec<NamedTensor>, PluginError>,
    /// A scalar loss of `output` against the batch's targets.
    pub loss: extern "C" fn(
        host: HostOpsRef,
        ctx: HostCtx,
        config: RStr<'_>,
        outputs: RSlice<'_, NamedTensor>,
        targets: RSlice<'_, Record>,
    ) -> RResult<TensorId, PluginError>,
    /// Predictions as plain CPU values, one record per sample.
    pub decode: extern "C" fn(
        host: HostOpsRef,
        ctx: HostCtx,
        config: RStr<'_>,
        outputs: RSlice<'_, NamedTensor>,
    ) -> RResult<RVec<Record>, PluginError>,
    /// Metrics over a whole split.
    pub evaluate: extern "C" fn(
        config: RStr<'_>,
        predictions: RSlice<'_, Record>,
        targets: RSlice<'_, Record>,
    ) -> RResult<RVec<Metric>, PluginError>,
    /// The samples of `split` in the task's native annotation format under `root`.
    #[sabi(last_prefix_field)]
    pub dataset: extern "C" fn(
        config: RStr<'_>,
        root: RStr<'_>,
        split: Split,
    ) -> RResult<RVec<Record>, PluginError>,
    /// Draws a prediction for `image` into the PNG `out`: `true` when drawn, `false` when the
    /// task draws nothing.
    pub visualize: ROption<
        extern "C" fn(
            config: RStr<'_>,
            image: RStr<'_>,
            prediction: &Record,
            out: RStr<'_>,
        ) -> RResult<bool, PluginError>,
    >,
    /// One line a person reads for a prediction (`clasp predict` prints it; optional).
    pub describe: ROption<
        extern "C" fn(config: RStr<'_>, prediction: &Record) -> RResult<RString, PluginError>,
    >,
    /// What the head needs of the training split (positive ratios, class counts), kept in its
    /// buffers; fine-tuning calls it once before `build_head` (optional).
    pub prepare: ROption<
        extern "C" fn(
            host: HostOpsRef,
            ctx: HostCtx,
            config: RStr<'_>,
            train: RSlice<'_, Record>,
        ) -> RResult<(), PluginError>,
    >,
    /// Metrics of predictions another system wrote to files (`clasp eval --task NAME --input
    /// FILE=PATH`), named as the spec's `result_files`; `RNone` inside: the task reads none.
    pub evaluate_files: ROption<
        extern "C" fn(
            config: RStr<'_>,
            inputs: RSlice<'_, NamedPath>,
        ) -> RResult<ROption<RVec<Metric>>, PluginError>,
    >,
    /// The targets of `record`, as loaded for an image of `height` × `width`, after that image is
    /// mirrored left–right; `RNone` when the task is not trained on mirrored images. Hosts train
    /// with random flips by default only when this says the task supports them.
    #[sabi(missing_field(default))]
    pub flip: ROption<
        extern "C" fn(
            config: RStr<'_>,
            record: &Record,
            height: u32,
            width: u32,
        ) -> RResult<ROption<Record>, PluginError>,
    >,
    /// The prediction for an image merged with the prediction for its mirror image (the flip
    /// test); `RNone` when the task offers no flip test.
    #[sabi(missing_field(default))]
    pub merge_flip: ROption<
        extern "C" fn(
            config: RStr<'_>,
            prediction: &Record,
            mirrored: &Record,
        ) -> RResult<ROption<Record>, PluginError>,
    >,
    /// Draws the prediction for the query `image` beside the closest of `gallery` (predictions
    /// whose `image` names their file) into the PNG `out`: a retrieval task's rank list;
    /// `false` when the task draws none.
    #[sabi(missing_field(default))]
    pub visualize_ranking: ROption<
        extern "C" fn(
            config: RStr<'_>,
            image: RStr<'_>,
            prediction: &Record,
            gallery: RSlice<'_, Record>,
            out: RStr<'_>,
        ) -> RResult<bool, PluginError>,
    >,
    /// Per-sample statistics of a split's predictions, from which `metrics_of_samples` gives
    /// the split's metrics (`RNone` inside: the task offers none).
    #[sabi(missing_field(default))]
    pub sample_statistics: ROption<
        extern "C" fn(
            config: RStr<'_>,
            predictions: RSlice<'_, Record>,
            targets: RSlice<'_, Record>,
        ) -> RResult<ROption<RVec<SampleStats>>, PluginError>,
    >,
    /// The metrics of a multiset of rows of `sample_statistics` (a bootstrap resample).
    #[sabi(missing_field(default))]
    pub metrics_of_samples: ROption<
        extern "C" fn(
            config: RStr<'_>,
            samples: RSlice<'_, SampleStats>,
        ) -> RResult<ROption<RVec<Metric>>, PluginError>,
    >,
    /// Predictions for `test` that never look at an image, made from the `train` targets.
    #[sabi(missing_field(default))]
    pub blind_predictions: ROption<
        extern "C" fn(
            config: RStr<'_>,
            train: RSlice<'_, Record>,
            test: RSlice<'_, Record>,
        ) -> RResult<ROption<RVec<NamedPredictions>>, PluginError>,
    >,
}

impl RootModule for TaskPluginRef {
    abi_stable::declare_root_module_statics! {TaskPluginRef}
    const BASE_NAME: &'static str = "clasp_task";
    const NAME: &'static str = "clasp_task";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
