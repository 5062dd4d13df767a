//! Optimisation: AdamW with groups, schedules, clipping. Sees variables, not layers.

pub mod accumulate;
pub mod adamw;
pub mod clip;
pub mod divergence;
pub mod groups;
pub mod schedule;

pub use accumulate::{add_grads, share};
pub use adamw::{AdamW, AdamWConfig, GradSource, StepStats};
pub use divergence::ensure_finite_loss;
pub use groups::{backbone_and_head_groups, build_groups, ParamGroup};
pub use schedule::CosineSchedule;
