//! clasp-sdk: the stable plugin ABI of CLASP-rs and the safe API task plugins are written against.
//!
//! A plugin is a `cdylib` that implements [`Task`] and calls [`export_task!`]. Tensors never cross
//! the boundary: the plugin holds [`TensorId`] handles into the host's arena and asks the host, through
//! the [`abi::HostOps`] vtable, to compute with them — on the host's device, with its autograd.
//! abi_stable checks every layout at load time; [`abi::INTERFACE_VERSION`] guards the meaning.
//! This crate never depends on candle or on clasp-core.

pub mod abi;
pub mod classify;
#[cfg(feature = "draw")]
pub mod draw;
mod error;
pub mod export;
pub mod host;
pub mod outputs;
pub mod plugin;
pub mod pool;
pub mod settings;
pub mod table;
pub mod task;
pub mod upsample;

pub use abi::{
    ErrorKind, Features, PluginSpec, Record, Role, SampleStats, Split, TensorId, INTERFACE_VERSION,
};
pub use abi_stable;

/// This SDK's version: a plugin built against another minor version is refused at load time.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");
pub use error::Error;
pub use host::{Host, Init, Result, Tensor};
pub use outputs::Outputs;
pub use pool::Pool;
pub use settings::{ensure_in, Settings, MAX_WIDTH};
pub use task::{
    ensure_paired, group_of_image, input, FeatureMaps, Metrics, NamedPredictionSets, Spec, Task,
};
pub use upsample::UpsampleHead;

/// What nearly every plugin uses: `use clasp_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::{
        export_task, fail, FeatureMaps, Host, Init, Metrics, Outputs, Record, Result, Settings,
        Spec, Split, Task, Tensor,
    };
}
