//! Data: image folders and preprocessing. Knows no model.

pub mod augment;
pub mod formats;
pub mod image_folder;
pub mod images;
pub mod loader;
pub mod sampler;
pub mod synth;
