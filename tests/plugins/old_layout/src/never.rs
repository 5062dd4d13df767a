//! Plugin functions of the old interface (errors and splits as strings), never called: the
//! plugin is refused at load time.

use abi_stable::std_types::{RErr, RResult, RSlice, RStr, RString, RVec};
use clasp_sdk::abi::{Features, HostCtx, HostOpsRef, Metric, PluginSpec, Record, TensorId};

fn unused<T>() -> RResult<T, RString> {
    RErr("never called".into())
}
pub extern "C" fn spec() -> RResult<PluginSpec, RString> {
    unused()
}
pub extern "C" fn build_head(
    _: HostOpsRef,
    _: HostCtx,
    _: RStr<'_>,
    _: u64,
) -> RResult<(), RString> {
    unused()
}
pub extern "C" fn forward(
    _: HostOpsRef,
    _: HostCtx,
    _: RStr<'_>,
    _: Features,
) -> RResult<TensorId, RString> {
    unused()
}
pub extern "C" fn loss(
    _: HostOpsRef,
    _: HostCtx,
    _: RStr<'_>,
    _: TensorId,
    _: RSlice<'_, Record>,
) -> RResult<TensorId, RString> {
    unused()
}
pub extern "C" fn decode(
    _: HostOpsRef,
    _: HostCtx,
    _: RStr<'_>,
    _: TensorId,
) -> RResult<RVec<Record>, RString> {
    unused()
}
pub extern "C" fn evaluate(
    _: RStr<'_>,
    _: RSlice<'_, Record>,
    _: RSlice<'_, Record>,
) -> RResult<RVec<Metric>, RString> {
    unused()
}
pub extern "C" fn dataset(_: RStr<'_>, _: RStr<'_>, _: RStr<'_>) -> RResult<RVec<Record>, RString> {
    unused()
}
