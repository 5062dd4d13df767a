//! Exporting backbones to other ecosystems.

pub mod timm;
