//! The plugin host: discovery and checked loading of task plugins, and the tensor vtable they
//! compute through.

pub mod head;
pub mod loader;
pub mod ops;
pub mod scoring;
pub mod task_config;
pub mod task_head;

pub use head::HeadState;
pub use loader::{load, Plugin};
