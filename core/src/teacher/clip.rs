//! A whole CLIP model in Hugging Face's layout: both towers, their projections (bias-free) and
//! the learnable logit scale. Reads `config.json` + `model.safetensors` from a folder, strictly:
//! a missing or unexpected tensor is an error that names it.

use std::path::Path;

use anyhow::{Context, Result};
use candle_core::{Device, Module, Tensor};

use super::clip_config::ClipConfig;
use super::clip_text::ClipText;
use super::clip_vision::ClipVision;
use crate::model::layers::Linear;
use crate::model::params::{Init, ParamStore};

pub struct Clip {
    pub config: ClipConfig,
    pub store: ParamStore,
    pub text: ClipText,
    pub vision: ClipVision,
    pub text_projection: Linear,
    pub visual_projection: Linear,
    pub logit_scale: Tensor,
}

impl Clip {
    /// A CLIP with fresh weights (for training a teacher), named as transformers names them.
    pub fn new(config: ClipConfig, device: &Device, seed: u64) -> Result<Self> {
        Self::build(config, ParamStore::new(device, seed))
    }

    fn build(config: ClipConfig, store: ParamStore) -> Result<Self> {
        let root = store.root();
        let text = ClipText::new(&root.pp("text_model"), &config)?;
        let vision = ClipVision::new(&root.pp("vision_model"), &config)?;
        // transformers inits each projection with std (tower width)^-½.
        let proj = |name: &str, from: usize| -> Result<Linear> {
            Ok(Linear::from_tensors(
                root.pp(name).get(
                    "weight",
                    &[config.projection_dim, from],
                    Init::TruncNormal((from as f32).powf(-0.5)),
                )?,
                None,
            ))
        };
        let text_projection = proj("text_projection", config.text_config.hidden_size)?;
        let visual_projection = proj("visual_projection", config.vision_config.hidden_size)?;
        let logit_scale = root.get(
            "logit_scale",
            &[],
            Init::Const(config.logit_scale_init_value as f32),
        )?;
        Ok(Self {
            config,
            store,
            text,
            vision,
            text_projection,
            visual_projection,
            logit_scale,
        })
    }

    /// The CLIP in `dir` (`config.json`, `model.safetensors`), to be run: its weights are frozen
    /// ([`ParamStore::frozen`]), so no forward pass records an autograd graph. (A teacher is
    /// trained from [`Clip::new`]; its resume state restores a trainable model.)
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let config = ClipConfig::read(&dir.join("config.json"))?;
        let model = Self::build(config, ParamStore::frozen(device))?;
        let file = dir.join("model.safetensors");
        let tensors = candle_core::safetensors::load(&file, device)
            .with_context(|| format!("reading {}", file.display()))?;
        // transformers may save `position_ids` buffers; they are not weights.
        let tensors = tensors
            .into_iter()
            .filter(|(k, _)| !k.ends_with("position_ids"))
            .collect();
        model
            .store
            .load_strict(&tensors)
            .with_context(|| format!("loading {}", file.display()))?;
        Ok(model)
    }

    /// Image embeddings `[B, projection_dim]` (projected, not normalised), as transformers'
    /// `get_image_features`, for normalised pixels `[B, 3, H, W]`.
    pub fn image_embeds(&self, pixels: &Tensor) -> Result<Tensor> {
        Ok(self
            .visual_projection
            .forward(&self.vision.pooled(pixels)?)?)
    }

    /// Dense patch embeddings `[B, gh·gw, projection_dim]` by the MaskCLIP path (see
    /// [`ClipVision::dense`]), projected like image embeddings: the source of part pseudo-labels.
    pub fn dense_embeds(&self, pixels: &Tensor) -> Result<Tensor> {
        Ok(self
            .visual_projection
            .forward(&self.vision.dense(pixels)?)?)
    }

    /// Dense patch embeddings and image embeddings of the same pixels, sharing the tower's pass.
    pub fn dense_and_image_embeds(&self, pixels: &Tensor) -> Result<(Tensor, Tensor)> {
        let (dense, pooled) = self.vision.dense_and_pooled(pixels)?;
        Ok((
            self.visual_projection.forward(&dense)?,
            self.visual_projection.forward(&pooled)?,
        ))
    }

    /// Text embeddings `[B, projection_dim]` (projected, not normalised), as `get_text_features`.
    pub fn text_embeds(&self, ids: &[Vec<u32>]) -> Result<Tensor> {
        Ok(self.text_projection.forward(&self.text.pooled(ids)?)?)
    }
}
