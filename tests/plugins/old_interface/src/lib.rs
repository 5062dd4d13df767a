//! A plugin that claims an interface version this host does not speak (as a plugin built
//! against a future or past SDK would), exported by hand.

mod never;

use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::std_types::ROption;
use clasp_sdk::plugin::{TaskPlugin, TaskPluginRef};
use never::*;

#[abi_stable::export_root_module]
pub fn clasp_task_root_module() -> TaskPluginRef {
    TaskPlugin {
        interface_version: 999,
        spec,
        check_config,
        build_head,
        forward,
        loss,
        decode,
        evaluate,
        dataset,
        visualize: ROption::RNone,
        describe: ROption::RNone,
        prepare: ROption::RNone,
        evaluate_files: ROption::RNone,
        flip: ROption::RNone,
        merge_flip: ROption::RNone,
        visualize_ranking: ROption::RNone,
        sample_statistics: ROption::RNone,
        metrics_of_samples: ROption::RNone,
        blind_predictions: ROption::RNone,
    }
    .leak_into_prefix()
}
