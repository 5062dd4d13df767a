//! Plugin functions that are never called: the plugins built from this file are refused at load
//! time. Shared by the test plugins that exercise the loader's checks.

use abi_stable::std_types::{RErr, RResult, RSlice, RStr, RVec};
use clasp_sdk::abi::{
    ErrorKind, Features, HostCtx, HostOpsRef, Metric, NamedTensor, PluginError, PluginSpec, Record,
    Split, TensorId,
};

fn unused<T>() -> RResult<T, PluginError> {
    RErr(PluginError {
        kind: ErrorKind::Unsupported,
        message: "never called".into(),
    })
}
pub extern "C" fn spec() -> RResult<PluginSpec, PluginError> {
    unused()
}
pub extern "C" fn check_config(_: RStr<'_>) -> RResult<(), PluginError> {
    unused()
}
pub extern "C" fn build_head(
    _: HostOpsRef,
    _: HostCtx,
    _: RStr<'_>,
    _: u64,
) -> RResult<(), PluginError> {
    unused()
}
pub extern "C" fn forward(
    _: HostOpsRef,
    _: HostCtx,
    _: RStr<'_>,
    _: Features,
) -> RResult<RVec<NamedTensor>, PluginError> {
    unused()
}
pub extern "C" fn loss(
    _: HostOpsRef,
    _: HostCtx,
    _: RStr<'_>,
    _: RSlice<'_, NamedTensor>,
    _: RSlice<'_, Record>,
) -> RResult<TensorId, PluginError> {
    unused()
}
pub extern "C" fn decode(
    _: HostOpsRef,
    _: HostCtx,
    _: RStr<'_>,
    _: RSlice<'_, NamedTensor>,
) -> RResult<RVec<Record>, PluginError> {
    unused()
}
pub extern "C" fn evaluate(
    _: RStr<'_>,
    _: RSlice<'_, Record>,
    _: RSlice<'_, Record>,
) -> RResult<RVec<Metric>, PluginError> {
    unused()
}
pub extern "C" fn dataset(
    _: RStr<'_>,
    _: RStr<'_>,
    _: Split,
) -> RResult<RVec<Record>, PluginError> {
    unused()
}
