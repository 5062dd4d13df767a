//! The CLIP teacher: a CLIP model in Hugging Face's layout (config.json + model.safetensors),
//! read from a local folder, that embeds images and text for CLASP's guidance.

pub mod caption_data;
pub mod clip;
pub mod clip_config;
pub mod clip_encoder;
pub mod clip_text;
pub mod clip_vision;
pub mod contrastive;
pub mod label_cache;
pub mod label_job;
pub mod labeller;
pub mod preprocess;
pub mod pseudo_labels;
pub mod quality;
pub mod sentence_bank;
pub mod task_text;
pub mod tokenizer;
pub mod train;
pub mod train_state;
pub mod word_tokenizer;
