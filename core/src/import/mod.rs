//! Initial weights from other ecosystems' checkpoints (the reverse of `export`).

pub mod clip;
pub mod timm;
