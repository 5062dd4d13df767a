//! A plugin built against an SDK whose root module has another layout: `sdk-before-describe`,
//! the SDK before `describe` and `prepare` were appended (9 fields instead of 11). abi_stable lets a plugin be
//! newer than the host, never older, so the host must refuse it by layout.

#[path = "../../old_interface/src/never.rs"]
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
