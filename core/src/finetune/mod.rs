//! Fine-tuning a backbone on a task through its plugin (DESIGN §1, §6).

pub mod data;
pub mod train;

pub use train::{finetune, FinetuneOutcome};
