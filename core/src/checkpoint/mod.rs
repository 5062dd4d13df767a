//! Checkpoints: safetensors weights + optimiser state + `manifest.json`, written atomically;
//! `checkpointer` keeps the resumable ones of every training loop.

pub mod atomic;
pub mod backbone;
pub mod checkpointer;
pub mod manifest;
pub mod store;
pub mod tensor_file;

pub use backbone::{load, save};
pub use checkpointer::Checkpointer;
pub use manifest::Manifest;
