//! A plugin built against an old SDK: `sdk-before-describe` is clasp-sdk 0.1.0 of interface 1,
//! before `describe` and `prepare` were appended (9 fields), with strings for errors and splits.
//! The host must refuse it by name and ask for a rebuild against its own clasp-sdk.

mod never;

use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::std_types::ROption;
use clasp_sdk::abi::INTERFACE_VERSION;
use clasp_sdk::plugin::{TaskPlugin, TaskPluginRef};
use never::*;

#[abi_stable::export_root_module]
pub fn clasp_task_root_module() -> TaskPluginRef {
    TaskPlugin {
        interface_version: INTERFACE_VERSION,
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
