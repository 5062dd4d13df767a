//! `config.json` of a Hugging Face `CLIPModel`, read as transformers reads it: every field has
//! transformers' default, and the activation and end-of-text token follow the file.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The MLP activation of a tower (`hidden_act`).
pub use crate::model::activation::Activation;

fn text_default_hidden() -> usize {
    512
}
fn text_default_intermediate() -> usize {
    2048
}
fn text_default_heads() -> usize {
    8
}
fn default_layers() -> usize {
    12
}
fn default_act() -> String {
    "quick_gelu".into()
}
fn default_eps() -> f64 {
    1e-5
}
fn text_default_vocab() -> usize {
    49408
}
fn text_default_positions() -> usize {
    77
}
fn text_default_eos() -> i64 {
    2
}
fn vision_default_hidden() -> usize {
    768
}
fn vision_default_intermediate() -> usize {
    3072
}
fn vision_default_heads() -> usize {
    12
}
fn vision_default_image() -> usize {
    224
}
fn vision_default_patch() -> usize {
    32
}
fn default_channels() -> usize {
    3
}
fn default_projection() -> usize {
    512
}
fn default_logit_scale() -> f64 {
    2.6592
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct TextConfig {
    #[serde(default = "text_default_vocab")]
    pub vocab_size: usize,
    #[serde(default = "text_default_hidden")]
    pub hidden_size: usize,
    #[serde(default = "text_default_intermediate")]
    pub intermediate_size: usize,
    #[serde(default = "default_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "text_default_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "text_default_positions")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// 2 in configs written before transformers 4.31: the pooled token is then the one with the
    /// highest id (OpenAI's end-of-text has the highest id); otherwise the first `eos_token_id`.
    #[serde(default = "text_default_eos")]
    pub eos_token_id: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct VisionConfig {
    #[serde(default = "vision_default_hidden")]
    pub hidden_size: usize,
    #[serde(default = "vision_default_intermediate")]
    pub intermediate_size: usize,
    #[serde(default = "default_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "vision_default_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "vision_default_image")]
    pub image_size: usize,
    #[serde(default = "vision_default_patch")]
    pub patch_size: usize,
    #[serde(default = "default_channels")]
    pub num_channels: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ClipConfig {
    pub text_config: TextConfig,
    pub vision_config: VisionConfig,
    #[serde(default = "default_projection")]
    pub projection_dim: usize,
    #[serde(default = "default_logit_scale")]
    pub logit_scale_init_value: f64,
}

impl ClipConfig {
    /// Reads `config.json`; a malformed file names the file and the JSON path.
    pub fn read(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let de = &mut serde_json::Deserializer::from_str(&text);
        let cfg: Self = serde_path_to_error::deserialize(de)
            .map_err(|e| anyhow::anyhow!("{}: at `{}`: {}", path.display(), e.path(), e.inner()))?;
        cfg.check().with_context(|| path.display().to_string())?;
        Ok(cfg)
    }

    /// Writes `config.json` as transformers' `CLIPModel.save_pretrained` would (model types and
    /// architecture named, so `CLIPModel.from_pretrained` reads the folder too).
    pub fn write(&self, path: &Path, bos_token_id: u32) -> Result<()> {
        let mut v = serde_json::to_value(self)?;
        v["model_type"] = "clip".into();
        v["architectures"] = serde_json::json!(["CLIPModel"]);
        v["text_config"]["model_type"] = "clip_text_model".into();
        v["text_config"]["bos_token_id"] = bos_token_id.into();
        v["text_config"]["pad_token_id"] = self.text_config.eos_token_id.into();
        v["vision_config"]["model_type"] = "clip_vision_model".into();
        std::fs::write(path, serde_json::to_string_pretty(&v)?)
            .with_context(|| format!("writing {}", path.display()))
    }

    fn check(&self) -> Result<()> {
        let (t, v) = (&self.text_config, &self.vision_config);
        Activation::parse(&t.hidden_act, "text_config.hidden_act")?;
        Activation::parse(&v.hidden_act, "vision_config.hidden_act")?;
        for (key, dim, heads) in [
            ("text_config", t.hidden_size, t.num_attention_heads),
            ("vision_config", v.hidden_size, v.num_attention_heads),
        ] {
            if heads == 0 || dim % heads != 0 {
                bail!("`{key}.hidden_size` = {dim} is not divisible by `num_attention_heads` = {heads}");
            }
        }
        if v.patch_size == 0 || v.image_size % v.patch_size != 0 {
            bail!(
                "`vision_config.image_size` = {} is not a multiple of `patch_size` = {}",
                v.image_size,
                v.patch_size
            );
        }
        Ok(())
    }

    pub fn text_activation(&self) -> Activation {
        Activation::parse(&self.text_config.hidden_act, "").expect("checked on read")
    }

    pub fn vision_activation(&self) -> Activation {
        Activation::parse(&self.vision_config.hidden_act, "").expect("checked on read")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_transformers_and_bad_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        std::fs::write(
            &p,
            r#"{"text_config": {}, "vision_config": {"patch_size": 16}}"#,
        )
        .unwrap();
        let c = ClipConfig::read(&p).unwrap();
        assert_eq!(c.text_config.eos_token_id, 2);
        assert_eq!(c.vision_config.image_size, 224);
        assert_eq!(c.text_activation(), Activation::QuickGelu);
        std::fs::write(
            &p,
            r#"{"text_config": {"hidden_act": "relu"}, "vision_config": {}}"#,
        )
        .unwrap();
        let e = format!("{:#}", ClipConfig::read(&p).unwrap_err());
        assert!(
            e.contains("text_config.hidden_act") && e.contains("relu"),
            "{e}"
        );
        std::fs::write(
            &p,
            r#"{"text_config": {"hidden_size": "x"}, "vision_config": {}}"#,
        )
        .unwrap();
        let e = format!("{:#}", ClipConfig::read(&p).unwrap_err());
        assert!(e.contains("text_config.hidden_size"), "{e}");
    }
}
