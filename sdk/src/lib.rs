//! clasp-sdk: the stable plugin ABI of CLASP-rs and the safe API task plugins are written against.
//!
//! A plugin is a `cdylib` that implements [`Task`] and calls [`export_task!`]. Tensors never cross
//! the boundary: the plugin holds [`TensorId`] handles into the host's arena and asks the host, through
//! the [`abi::HostOps`] vtable, to compute with them — on the host's device, with its autograd.
//! abi_stable checks every layout at load time; [`abi::INTERFACE_VERSION`] guards the meaning.
//! This crate never depends on candle or on clasp-core.

pub mod abi;
#[cfg(feature = "draw")]
pub mod draw;
pub mod export;
pub mod host;
pub mod plugin;
pub mod pool;
pub mod task;
pub mod upsample;

pub use abi::{Features, PluginSpec, Record, SampleStats, TensorId, INTERFACE_VERSION};
pub use abi_stable;
pub use host::{Host, Init, Result, Tensor};
pub use pool::Pool;
pub use task::{
    ensure_paired, group_of_image, FeatureMaps, NamedPredictionSets, Spec, Task, TaskConfig,
};
pub use upsample::UpsampleHead;

/// An error a plugin reports to the host.
#[derive(Debug, Clone, PartialEq)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// `bail!`-style early return with an [`Error`].
#[macro_export]
macro_rules! fail {
    ($($arg:tt)*) => {
        return Err($crate::Error(format!($($arg)*)))
    };
}
