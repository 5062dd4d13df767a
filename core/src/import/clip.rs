//! The vision tower of a Hugging Face CLIP folder (`config.json` + `model.safetensors`) as the
//! backbone's initial weights — the start the paper's backbone takes from CLIP.
//!
//! transformers' names are mapped to timm's (as timm's own `_convert_openai_clip` does) and the
//! result goes through [`super::timm`], so PC-MoE experts, prompts and the report work as for a
//! timm file:
//! - `embeddings.class_embedding` → `cls_token`; the patch convolution has no bias (zeros here);
//! - `pre_layrnorm` → `norm_pre` (the model needs `model.pre_norm = true`);
//! - each layer's `q_proj`, `k_proj`, `v_proj` → one `attn.qkv` (stacked in that order),
//!   `out_proj` → `attn.proj`, `layer_norm1/2` → `norm1/2`, `mlp.fc1/2` → `mlp.fc1/2`;
//! - `post_layernorm` → `norm` (CLIP applies it to the class token; here every token gets it, as
//!   timm's CLIP ViTs do);
//! - the position embedding's square grid resampled to `model.img_size` with plain bicubic, as
//!   transformers' `interpolate_pos_encoding` does, so at that size the backbone computes what
//!   transformers' vision tower computes.
//!
//! The text tower and both projections have no counterpart and are listed as unused.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::Tensor;

use super::timm::{load_timm_with, TimmImport};
use crate::model::pos_embed::GridResampling;
use crate::model::{ParamStore, Preset, Vit, VitConfig};
use crate::teacher::clip::Clip;
use crate::teacher::clip_config::ClipConfig;

const VISION: &str = "vision_model.";

/// The `--set` overrides a model needs to take `config`'s vision tower: the preset of its width,
/// depth and heads, its patch size, activation, layer-norm epsilon and the pre-norm.
pub fn model_overrides(config: &ClipConfig) -> Result<Vec<String>> {
    let v = &config.vision_config;
    let dims = (v.hidden_size, v.num_hidden_layers, v.num_attention_heads);
    let preset = Preset::ALL.into_iter().find(|p| {
        let c = VitConfig::preset(*p);
        (c.embed_dim, c.depth, c.num_heads) == dims && c.mlp_hidden() == v.intermediate_size
    });
    let Some(preset) = preset else {
        bail!(
            "the CLIP vision tower is {} wide, {} layers, {} heads, MLP {}: no model preset has \
             that shape ({})",
            v.hidden_size,
            v.num_hidden_layers,
            v.num_attention_heads,
            v.intermediate_size,
            Preset::ALL
                .map(|p| {
                    let c = VitConfig::preset(p);
                    format!("{p}: {}/{}/{}", c.embed_dim, c.depth, c.num_heads)
                })
                .join(", ")
        );
    };
    Ok(vec![
        format!("model.preset=\"{preset}\""),
        format!("model.patch_size={}", v.patch_size),
        "model.pre_norm=true".into(),
        format!("model.activation=\"{}\"", config.vision_activation()),
        format!("model.norm_eps={:e}", v.layer_norm_eps),
    ])
}

/// Where `cfg` differs from what the CLIP tower needs, as `key: here vs CLIP` lines.
fn mismatches(cfg: &VitConfig, config: &ClipConfig) -> Vec<String> {
    let v = &config.vision_config;
    let tower = VitConfig {
        embed_dim: v.hidden_size,
        depth: v.num_hidden_layers,
        num_heads: v.num_attention_heads,
        patch_size: v.patch_size,
        pre_norm: true,
        activation: config.vision_activation(),
        norm_eps: v.layer_norm_eps,
        ..cfg.clone()
    };
    let mut out = cfg.computation_differences(&tower);
    for (key, ours, theirs) in [
        ("width", cfg.embed_dim, tower.embed_dim),
        ("depth", cfg.depth, tower.depth),
        ("heads", cfg.num_heads, tower.num_heads),
    ] {
        if ours != theirs {
            out.push(format!("{key}: {ours} vs {theirs}"));
        }
    }
    out
}

/// The vision tower's tensors under timm's names (a zero patch bias added).
fn as_timm(tower: &BTreeMap<String, Tensor>, layers: usize) -> Result<BTreeMap<String, Tensor>> {
    let get = |name: &str| -> Result<Tensor> {
        tower
            .get(name)
            .cloned()
            .with_context(|| format!("the CLIP folder has no `{VISION}{name}`"))
    };
    let mut sd = BTreeMap::new();
    let cls = get("embeddings.class_embedding")?;
    let d = cls.dim(0)?;
    sd.insert("cls_token".into(), cls.reshape((1, 1, d))?);
    let patch = get("embeddings.patch_embedding.weight")?;
    sd.insert(
        "patch_embed.proj.bias".into(),
        Tensor::zeros(d, patch.dtype(), patch.device())?,
    );
    sd.insert("patch_embed.proj.weight".into(), patch);
    let pos = get("embeddings.position_embedding.weight")?;
    sd.insert("pos_embed".into(), pos.unsqueeze(0)?);
    let mut rename = |from: &str, to: &str| -> Result<()> {
        for p in ["weight", "bias"] {
            sd.insert(format!("{to}.{p}"), get(&format!("{from}.{p}"))?);
        }
        Ok(())
    };
    rename("pre_layrnorm", "norm_pre")?;
    rename("post_layernorm", "norm")?;
    for i in 0..layers {
        let (l, b) = (format!("encoder.layers.{i}"), format!("blocks.{i}"));
        rename(
            &format!("{l}.self_attn.out_proj"),
            &format!("{b}.attn.proj"),
        )?;
        rename(&format!("{l}.layer_norm1"), &format!("{b}.norm1"))?;
        rename(&format!("{l}.layer_norm2"), &format!("{b}.norm2"))?;
        rename(&format!("{l}.mlp.fc1"), &format!("{b}.mlp.fc1"))?;
        rename(&format!("{l}.mlp.fc2"), &format!("{b}.mlp.fc2"))?;
    }
    // q, k and v stacked (after `rename`, which holds `sd` while it lives).
    for i in 0..layers {
        let (l, b) = (format!("encoder.layers.{i}"), format!("blocks.{i}"));
        for p in ["weight", "bias"] {
            let qkv = ["q", "k", "v"]
                .map(|x| get(&format!("{l}.self_attn.{x}_proj.{p}")))
                .into_iter()
                .collect::<Result<Vec<_>>>()?;
            sd.insert(format!("{b}.attn.qkv.{p}"), Tensor::cat(&qkv, 0)?);
        }
    }
    Ok(sd)
}

/// Sets `vit`'s variables in `store` from the vision tower of the CLIP folder `dir`.
pub fn load_clip(vit: &Vit, store: &ParamStore, dir: &Path) -> Result<TimmImport> {
    let clip = Clip::load(dir, store.device())
        .with_context(|| format!("reading the CLIP folder {}", dir.display()))?;
    let wrong = mismatches(&vit.cfg, &clip.config);
    if !wrong.is_empty() {
        bail!(
            "the model cannot take this CLIP vision tower (this model vs the tower: {}); \
             `clasp init --from-clip` sets these from the folder",
            wrong.join("; ")
        );
    }
    let all = clip.store.tensors();
    let tower: BTreeMap<String, Tensor> = all
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(VISION)?.to_string(), v.clone())))
        .collect();
    let sd = as_timm(&tower, clip.config.vision_config.num_hidden_layers)?;
    let mut report = load_timm_with(vit, store, &sd, GridResampling::Bicubic)?;
    let text = all.keys().filter(|k| k.starts_with("text_model.")).count();
    report.unused.extend(
        all.keys()
            .filter(|k| !k.starts_with(VISION) && !k.starts_with("text_model."))
            .cloned(),
    );
    if text > 0 {
        report.unused.push(format!("text_model.* ({text} tensors)"));
    }
    Ok(report)
}
