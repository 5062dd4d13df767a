//! A plugin that claims an interface version this host does not speak (as a plugin built
//! against a future or past SDK would), exported by hand.

use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::std_types::{RErr, ROption, RResult, RSlice, RStr, RString, RVec};
use clasp_sdk::abi::{Features, HostCtx, HostOpsRef, Metric, PluginSpec, Record, TensorId};
use clasp_sdk::plugin::{TaskPlugin, TaskPluginRef};

fn unused<T>() -> RResult<T, RString> {
    RErr("never called".into())
}
extern "C" fn spec() -> RResult<PluginSpec, RString> {
    unused()
}
extern "C" fn build_head(_: HostOpsRef, _: HostCtx, _: RStr<'_>, _: u64) -> RResult<(), RString> {
    unused()
}
extern "C" fn forward(
    _: HostOpsRef,
    _: HostCtx,
    _: RStr<'_>,
    _: Features,
) -> RResult<TensorId, RString> {
    unused()
}
extern "C" fn loss(
    _: HostOpsRef,
    _: HostCtx,
    _: RStr<'_>,
    _: TensorId,
    _: RSlice<'_, Record>,
) -> RResult<TensorId, RString> {
    unused()
}
extern "C" fn decode(
    _: HostOpsRef,
    _: HostCtx,
    _: RStr<'_>,
    _: TensorId,
) -> RResult<RVec<Record>, RString> {
    unused()
}
extern "C" fn evaluate(
    _: RStr<'_>,
    _: RSlice<'_, Record>,
    _: RSlice<'_, Record>,
) -> RResult<RVec<Metric>, RString> {
    unused()
}
extern "C" fn dataset(_: RStr<'_>, _: RStr<'_>, _: RStr<'_>) -> RResult<RVec<Record>, RString> {
    unused()
}

#[abi_stable::export_root_module]
pub fn clasp_task_root_module() -> TaskPluginRef {
    TaskPlugin {
        interface_version: 999,
        spec,
        build_head,
        forward,
        loss,
        decode,
        evaluate,
        dataset,
        visualize: ROption::RNone,
    }
    .leak_into_prefix()
}
