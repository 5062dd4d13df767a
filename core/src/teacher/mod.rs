//! The CLIP teacher: a CLIP model in Hugging Face's layout (config.json + model.safetensors),
//! read from a local folder, that embeds images and text for CLASP's guidance.

pub mod clip;
pub mod clip_config;
pub mod clip_encoder;
pub mod clip_text;
pub mod clip_vision;
pub mod preprocess;
pub mod pseudo_labels;
pub mod tokenizer;
