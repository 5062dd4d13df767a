//! The types that cross the plugin boundary. Everything here is `#[repr(C)]` + `StableAbi`, so
//! abi_stable checks at load time that host and plugin agree on every layout.

use abi_stable::std_types::{ROption, RResult, RSlice, RStr, RString, RVec};
use abi_stable::StableAbi;

/// Bumped when the meaning of the interface changes in a way layouts cannot show.
pub const INTERFACE_VERSION: u32 = 3;

/// A tensor living in the host's arena. Only the host can read it.
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TensorId(pub u64);

/// How a new parameter is filled.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq)]
pub enum InitKind {
    Zeros,
    Ones,
    /// Normal(0, std) truncated at ±2·std; std in `InitSpec::value`.
    TruncNormal,
    /// Kaiming-uniform as torch's default for Linear/Conv (value unused).
    KaimingUniform,
    Constant,
}

#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq)]
pub struct InitSpec {
    pub kind: InitKind,
    pub value: f64,
}

#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Relu,
    Gelu,
    Sigmoid,
    Tanh,
    Exp,
    Log,
    Neg,
    Abs,
    Sqrt,
    Sqr,
}

#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Maximum,
    Minimum,
}

#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    Mean,
    Max,
    Min,
}

/// The standard losses, computed by the host (with autograd).
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossKind {
    /// logits `[N, C]` (or `[N, C, H, W]`), target class ids; label smoothing, ignore id.
    CrossEntropy,
    /// logits and 0/1 targets of one shape, optional per-element weight; mean over elements.
    BinaryCrossEntropyWithLogits,
    /// prediction and target of one shape, optional per-element weight.
    MeanSquaredError,
}

/// The options of a host loss; each kind reads the ones it has.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Default)]
pub struct LossOptions {
    /// Cross entropy: the probability mass spread over the other classes.
    pub label_smoothing: f64,
    /// Cross entropy: a target class id that does not count.
    pub ignore_index: ROption<i64>,
}

/// A CPU copy of a tensor.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct HostArray {
    pub shape: RVec<u64>,
    pub data: RVec<f32>,
}

/// The backbone's outputs for a batch, as handles.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct Features {
    /// `[B, d]`
    pub cls: TensorId,
    /// `[B, d, h, w]`
    pub patches: TensorId,
    pub dim: u64,
    /// The head is being trained (dropout, batch-norm statistics).
    pub training: bool,
}

/// Which part of a dataset [`crate::Task::dataset`] lists.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// What the head is trained on.
    Train,
    /// What epochs, recipes and thresholds are chosen on (may be empty).
    Val,
    /// What is read once, after every choice is made.
    Test,
}

impl Split {
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];

    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Split {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Split::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| format!("`{s}` is not a split (train, val or test)"))
    }
}

/// What an evaluated sample of a retrieval task is: searched for, or searched among.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Query,
    Gallery,
}

/// One labelled sample of a task's dataset. Which fields a task fills is its own business;
/// the host carries them through batching and augmentation, and reads `identity` (the identity
/// sampler groups by it).
///
/// Two conventions let the host do the geometry for a task:
/// - `image` may end in `#crop=x,y,w,h` (source pixels, continuous coordinates, may reach past
///   the image): the host loads that box of the file, edges replicated, resized to the input
///   size — the top-down crop of one person in a larger picture.
/// - with a `label_map`, the host reads that PNG (8-bit class ids), takes the same box and
///   resizes it nearest-neighbour to the input size, and hands it to `loss`, `evaluate` and
///   `flip` as `values` (row-major class ids; 255 where the box leaves the map) with `shape`
///   `[H, W]`.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Default)]
pub struct Record {
    /// Image file (optionally with a `#crop=x,y,w,h` box).
    pub image: RString,
    /// Dense targets or predictions (attribute vector, keypoints as x, y, v triples, a loaded
    /// label map, class scores, a feature).
    pub values: RVec<f32>,
    /// The array shape of `values` where they form one (`[H, W]` for a label map, `[C, h, w]`
    /// for class scores); empty when they are a flat vector.
    pub shape: RVec<u64>,
    /// Task-specific integer targets or predictions (a class index).
    pub ints: RVec<i64>,
    /// The person shown, where the task knows it (reid's person id).
    pub identity: ROption<i64>,
    /// The camera that took the image, where the task knows it.
    pub camera: ROption<i64>,
    /// Query or gallery, for an evaluated sample of a retrieval task.
    pub role: ROption<Role>,
    /// A label-map file that follows the image's geometry, if the task has one.
    pub label_map: ROption<RString>,
}

/// Where [`Record::image`] marks a crop box.
pub const CROP_MARK: &str = "#crop=";

/// `path#crop=x,y,w,h` for a box of `path`.
pub fn crop_reference(path: &str, [x, y, w, h]: [f32; 4]) -> String {
    format!("{path}{CROP_MARK}{x},{y},{w},{h}")
}

/// Splits `image` into the file and its crop box, if it names one.
pub fn split_crop(image: &str) -> Result<(&str, Option<[f32; 4]>), String> {
    let Some(at) = image.rfind(CROP_MARK) else {
        return Ok((image, None));
    };
    let (path, spec) = (&image[..at], &image[at + CROP_MARK.len()..]);
    let parts: Vec<f32> = spec
        .split(',')
        .map(|p| p.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{image}: crop box `{spec}` is not four numbers: {e}"))?;
    match parts[..] {
        [x, y, w, h] if w > 0.0 && h > 0.0 && parts.iter().all(|v| v.is_finite()) => {
            Ok((path, Some([x, y, w, h])))
        }
        _ => Err(format!(
            "{image}: crop box `{spec}` must be x,y,w,h with w, h > 0"
        )),
    }
}

/// One entry of a plugin's configuration schema, derived from its settings type: `default` is a
/// JSON value.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct ConfigEntry {
    pub key: RString,
    pub default: RString,
    pub help: RString,
}

/// A result file `clasp eval --task T --input NAME=PATH` hands to the task's `evaluate_files`.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct ResultFile {
    pub name: RString,
    pub help: RString,
}

/// What kind of failure a plugin reports.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A task setting cannot be used.
    Config,
    /// Input data (a file, a record, a prediction) cannot be read.
    Data,
    /// The task does not do this.
    Unsupported,
    /// The plugin panicked; the panic was caught at the boundary.
    Panic,
    /// A host operation the plugin called failed.
    Host,
}

/// A plugin's failure as it crosses the boundary.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct PluginError {
    pub kind: ErrorKind,
    pub message: RString,
}

/// One output of a head's `forward`, by name (`logits`, `feature`, `heatmaps`).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct NamedTensor {
    pub name: RString,
    pub id: TensorId,
}

/// What a task plugin is.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct PluginSpec {
    pub name: RString,
    pub version: RString,
    /// The sentence whose text embedding seeds the task prompt.
    pub description: RString,
    /// Names of the outputs (attributes, classes, keypoints, …).
    pub labels: RVec<RString>,
    /// Input size [H, W] the task expects.
    pub input_size: [u32; 2],
    pub metrics: RVec<RString>,
    /// The metric that selects the best epoch (higher is better).
    pub primary_metric: RString,
    /// The task's settings (its `[task]` table), derived from its settings type.
    pub config: RVec<ConfigEntry>,
    pub head_variants: RVec<RString>,
    /// The result files `evaluate_files` reads (empty: it reads none).
    pub result_files: RVec<ResultFile>,
}

/// One input of `evaluate_files`: what the file is (`results`, `gt`, `features`, `pred_dir`, …)
/// and where.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct NamedPath {
    pub name: RString,
    pub path: RString,
}

/// A named metric value.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: RString,
    pub value: f64,
}

/// One scored sample's statistics (a reid query, an image): a row from which, with the rows of
/// the other samples, the task's metrics follow. `group` is what the row is resampled with (the
/// person it shows), so a bootstrap over groups is a bootstrap over people.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct SampleStats {
    pub group: u64,
    pub values: RVec<f64>,
}

/// The predictions of one image-blind predictor, by name.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct NamedPredictions {
    pub name: RString,
    pub predictions: RVec<Record>,
}

/// The host's tensor operations, passed to every plugin call. A prefix type, so later hosts can
/// append operations and older plugins keep working.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = HostOpsRef)))]
#[sabi(missing_field(panic))]
pub struct HostOps {
    /// A trainable parameter of the head, created once (or returned if it exists).
    pub param: extern "C" fn(
        ctx: HostCtx,
        name: RStr<'_>,
        shape: RSlice<'_, u64>,
        init: InitSpec,
    ) -> RResult<TensorId, RString>,
    /// A non-trainable buffer (batch-norm statistics), saved with the head.
    pub buffer: extern "C" fn(
        ctx: HostCtx,
        name: RStr<'_>,
        shape: RSlice<'_, u64>,
        init: InitSpec,
    ) -> RResult<TensorId, RString>,
    /// A constant from CPU data (targets, masks).
    pub constant: extern "C" fn(
        ctx: HostCtx,
        shape: RSlice<'_, u64>,
        data: RSlice<'_, f32>,
    ) -> RResult<TensorId, RString>,
    pub linear: extern "C" fn(
        ctx: HostCtx,
        x: TensorId,
        w: TensorId,
        b: ROption<TensorId>,
    ) -> RResult<TensorId, RString>,
    pub conv2d: extern "C" fn(
        ctx: HostCtx,
        x: TensorId,
        w: TensorId,
        b: ROption<TensorId>,
        stride: u32,
        padding: u32,
    ) -> RResult<TensorId, RString>,
    pub conv_transpose2d: extern "C" fn(
        ctx: HostCtx,
        x: TensorId,
        w: TensorId,
        b: ROption<TensorId>,
        stride: u32,
        padding: u32,
        output_padding: u32,
    ) -> RResult<TensorId, RString>,
    /// Batch norm over dim 1 with running statistics (updated in training).
    pub batch_norm: extern "C" fn(
        ctx: HostCtx,
        x: TensorId,
        weight: ROption<TensorId>,
        bias: ROption<TensorId>,
        running_mean: TensorId,
        running_var: TensorId,
        training: bool,
        momentum: f64,
        eps: f64,
    ) -> RResult<TensorId, RString>,
    /// Layer norm over the last dimension.
    pub layer_norm: extern "C" fn(
        ctx: HostCtx,
        x: TensorId,
        weight: TensorId,
        bias: TensorId,
        eps: f64,
    ) -> RResult<TensorId, RString>,
    pub unary: extern "C" fn(ctx: HostCtx, op: UnaryOp, x: TensorId) -> RResult<TensorId, RString>,
    /// Broadcasting elementwise op.
    pub binary: extern "C" fn(
        ctx: HostCtx,
        op: BinaryOp,
        a: TensorId,
        b: TensorId,
    ) -> RResult<TensorId, RString>,
    /// `x * mul + add`.
    pub affine:
        extern "C" fn(ctx: HostCtx, x: TensorId, mul: f64, add: f64) -> RResult<TensorId, RString>,
    pub matmul: extern "C" fn(ctx: HostCtx, a: TensorId, b: TensorId) -> RResult<TensorId, RString>,
    pub reshape: extern "C" fn(
        ctx: HostCtx,
        x: TensorId,
        shape: RSlice<'_, u64>,
    ) -> RResult<TensorId, RString>,
    pub permute: extern "C" fn(
        ctx: HostCtx,
        x: TensorId,
        dims: RSlice<'_, u64>,
    ) -> RResult<TensorId, RString>,
    pub concat: extern "C" fn(
        ctx: HostCtx,
        xs: RSlice<'_, TensorId>,
        dim: u64,
    ) -> RResult<TensorId, RString>,
    pub narrow: extern "C" fn(
        ctx: HostCtx,
        x: TensorId,
        dim: u64,
        start: u64,
        len: u64,
    ) -> RResult<TensorId, RString>,
    pub reduce: extern "C" fn(
        ctx: HostCtx,
        op: ReduceOp,
        x: TensorId,
        dim: u64,
        keepdim: bool,
    ) -> RResult<TensorId, RString>,
    /// Dropout with probability `p` (identity when not training).
    pub dropout: extern "C" fn(
        ctx: HostCtx,
        x: TensorId,
        p: f64,
        training: bool,
    ) -> RResult<TensorId, RString>,
    /// A scalar loss; `weight` is per element (or broadcastable).
    pub loss: extern "C" fn(
        ctx: HostCtx,
        kind: LossKind,
        input: TensorId,
        target: TensorId,
        weight: ROption<TensorId>,
        options: LossOptions,
    ) -> RResult<TensorId, RString>,
    pub shape: extern "C" fn(ctx: HostCtx, x: TensorId) -> RResult<RVec<u64>, RString>,
    #[sabi(last_prefix_field)]
    pub to_cpu: extern "C" fn(ctx: HostCtx, x: TensorId) -> RResult<HostArray, RString>,
    /// Overwrites a buffer (from `buffer`) with `value` of the same shape: statistics a plugin
    /// computes from data. Absent from hosts older than this field.
    #[sabi(missing_field(option))]
    pub assign:
        extern "C" fn(ctx: HostCtx, buffer: TensorId, value: TensorId) -> RResult<(), RString>,
}

/// The host's context for one call; opaque to plugins.
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct HostCtx(pub *const core::ffi::c_void);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_boxes_round_trip_and_bad_ones_are_named() {
        let r = crop_reference("a/b#1.jpg", [-3.5, 2.0, 40.0, 80.25]);
        assert_eq!(
            split_crop(&r).unwrap(),
            ("a/b#1.jpg", Some([-3.5, 2.0, 40.0, 80.25]))
        );
        assert_eq!(split_crop("a/b.jpg").unwrap(), ("a/b.jpg", None));
        let e = split_crop("a.jpg#crop=1,2,3").unwrap_err();
        assert!(
            e.contains("a.jpg#crop=1,2,3") && e.contains("x,y,w,h"),
            "{e}"
        );
        assert!(split_crop("a.jpg#crop=1,2,0,4").is_err());
        assert!(split_crop("a.jpg#crop=1,x,3,4")
            .unwrap_err()
            .contains("four numbers"));
    }
}
