//! Checkpoints: safetensors weights + optimiser state + `manifest.json`, written atomically.

pub mod atomic;
pub mod backbone;
pub mod manifest;
pub mod store;
pub mod tensor_file;

pub use backbone::{load, save};
pub use manifest::Manifest;
