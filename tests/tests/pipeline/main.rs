//! The CLASP pipeline: the CLIP teacher (parity with transformers: model, tokenizer,
//! preprocessing), the trained teacher, the pseudo-label cache and its evaluation, and
//! pre-training on those labels, and the quickstart that chains them all — one test binary (each binary links all of clasp-core, so
//! related tests share one).

#[path = "../common/mod.rs"]
mod common;

mod clip_parity;
mod clip_preprocess;
mod clip_tokenizer;
mod label_cache;
mod pretrain;
mod quickstart;
