//! CLASP-rs core: CLIP-guided adaptable self-supervised pre-training for human-centric vision.
//!
//! Module map (imports run downwards): `cli` → `config`, `checkpoint`, `optim`, `model`.
//! `model` knows no file formats and no training loop; `optim` sees variables, not layers.

pub mod backbone;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod data;
pub mod device;
pub mod export;
pub mod finetune;
pub mod model;
pub mod ops;
pub mod optim;
pub mod plugin_host;
pub mod pretrain;
pub mod probe;
pub mod quickstart;
pub mod run_dir;
pub mod scoring;
pub mod task_embedding;
pub mod teacher;
