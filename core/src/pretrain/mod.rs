//! CLIP-guided pre-training (DESIGN §5): DINO self-distillation under the `ssl` prompt, part
//! pseudo-labels under `part`, attribute pseudo-labels under `attr`, PC-MoE on or off.

pub mod data;
pub mod dino_head;
pub mod dino_loss;
pub mod gates;
pub mod grad_conflict;
pub mod losses;
pub mod model;
pub mod pseudo_losses;
pub mod setup;
pub mod state;
mod step_sum;
pub mod train;

pub use train::{pretrain, PretrainOutcome, StepMetrics};
