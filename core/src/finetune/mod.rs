//! Fine-tuning a backbone on a task through its plugin (DESIGN §1, §6), and the task model it
//! produces.

pub mod data;
pub mod evaluate;
pub mod resume;
pub mod sample;
pub mod setup;
pub mod task_model;
pub mod task_prompt;
pub mod train;

pub use evaluate::{evaluate, Evaluation};
pub use task_model::TaskModel;
pub use train::{finetune, finetune_for, FinetuneOutcome, FinetuneRun};
