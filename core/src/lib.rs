//! CLASP-rs core: CLIP-guided adaptable self-supervised pre-training for human-centric vision.
//!
//! Module map, from the commands down:
//! - `cli` — one file per `clasp` command; `quickstart` — the end-to-end job and its report.
//! - Jobs: `pretrain` (DINO + pseudo-label losses, PC-MoE gates), `teacher` (the synthetic CLIP,
//!   pseudo-labels and their cache), `finetune` and `probe` (through task plugins), `scoring`
//!   (bootstrap intervals, image-blind levels).
//! - `plugin_host` — loading task plugins over the stable ABI and serving their tensor calls.
//! - `backbone`, `checkpoint` (atomic directories, manifests), `export` (timm), `run_dir` (a run's
//!   folder and its lock), `distributed` (the processes of a data-parallel job), `run_log` (the metrics lines and progress of every training loop),
//!   `config` (layered settings), `data` (images, loaders, the synthetic people), `device`,
//!   `file_hash`, `task_embedding`, `charts` (curves, gate heatmaps, bars with intervals), `json`.
//! - `optim` sees variables, not layers; `model` knows no file formats and no training loop;
//!   `ops` holds the fused CPU kernels with their backward passes.

pub mod backbone;
pub mod charts;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod data;
pub mod device;
pub mod distributed;
pub mod export;
pub mod file_hash;
pub mod finetune;
pub mod import;
pub mod json;
pub mod model;
pub mod ops;
pub mod optim;
pub mod plugin_host;
pub mod pretrain;
pub mod probe;
pub mod proc_stat;
pub mod proc_status;
pub mod quickstart;
pub mod run_dir;
pub mod run_log;
pub mod scoring;
pub mod task_embedding;
pub mod teacher;
