//! Data: image folders and preprocessing. Knows no model.

pub mod formats;
pub mod images;
pub mod synth;
