//! Data: image folders and preprocessing. Knows no model.

pub mod augment;
pub mod formats;
pub mod images;
pub mod synth;
