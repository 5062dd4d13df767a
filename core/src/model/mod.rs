//! The backbone: a timm-compatible ViT with task prompts and PC-MoE. Knows no file formats and no
//! training loop.

pub mod activation;
pub mod attention;
pub mod config;
pub mod conv;
pub mod layers;
pub mod mlp;
pub mod params;
pub mod pcmoe;
pub mod pos_embed;
pub mod precision;
pub mod prompts;
pub mod vit;

pub use activation::Activation;
pub use config::{MoeConfig, Preset, PromptConfig, VitConfig};
pub use params::{Init, ParamStore, Scope};
pub use precision::Precision;
pub use vit::{Vit, VitOutput};
