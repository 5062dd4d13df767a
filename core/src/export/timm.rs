//! A plain (or folded) ViT under timm's `VisionTransformer` state-dict names.
//!
//! A folded task prompt becomes timm's `reg_token` (register tokens sit after CLS, as our prompt
//! tokens do) with zero position embedding, which is exactly how our model treats it.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use candle_core::Tensor;
use serde::Serialize;

use crate::model::vit::{BlockMlp, PromptSource};
use crate::model::Vit;

/// Keyword arguments for `timm.models.vision_transformer.VisionTransformer(**kwargs)`.
#[derive(Debug, Clone, Serialize)]
pub struct TimmKwargs {
    pub img_size: [usize; 2],
    pub patch_size: usize,
    pub embed_dim: usize,
    pub depth: usize,
    pub num_heads: usize,
    pub mlp_ratio: f64,
    pub qkv_bias: bool,
    pub reg_tokens: usize,
    pub num_classes: usize,
    pub global_pool: String,
    pub dynamic_img_size: bool,
    pub pre_norm: bool,
    /// timm's name of the activation (`gelu`, `quick_gelu`, `gelu_tanh`).
    pub act_layer: String,
}

/// The state dict and constructor arguments, or a refusal that says why timm cannot express it.
pub fn to_timm(vit: &Vit) -> Result<(BTreeMap<String, Tensor>, TimmKwargs)> {
    let d = vit.cfg.embed_dim;
    let mut widths = Vec::new();
    let mut sd = BTreeMap::new();
    for (i, block) in vit.blocks.iter().enumerate() {
        let BlockMlp::Plain(mlp) = &block.mlp else {
            bail!("block {i} is an unfolded PC-MoE: export a model folded for one task (--task)");
        };
        widths.push(mlp.hidden());
        let p = format!("blocks.{i}");
        sd.insert(format!("{p}.norm1.weight"), block.norm1.weight.clone());
        sd.insert(format!("{p}.norm1.bias"), block.norm1.bias.clone());
        sd.insert(
            format!("{p}.attn.qkv.weight"),
            block.attn.qkv.weight.clone(),
        );
        if let Some(b) = &block.attn.qkv.bias {
            sd.insert(format!("{p}.attn.qkv.bias"), b.clone());
        }
        sd.insert(
            format!("{p}.attn.proj.weight"),
            block.attn.proj.weight.clone(),
        );
        if let Some(b) = &block.attn.proj.bias {
            sd.insert(format!("{p}.attn.proj.bias"), b.clone());
        }
        sd.insert(format!("{p}.norm2.weight"), block.norm2.weight.clone());
        sd.insert(format!("{p}.norm2.bias"), block.norm2.bias.clone());
        for (name, lin) in [("fc1", &mlp.fc1), ("fc2", &mlp.fc2)] {
            sd.insert(format!("{p}.mlp.{name}.weight"), lin.weight.clone());
            if let Some(b) = &lin.bias {
                sd.insert(format!("{p}.mlp.{name}.bias"), b.clone());
            }
        }
    }
    if widths.windows(2).any(|w| w[0] != w[1]) {
        bail!(
            "timm's VisionTransformer needs one MLP width for all blocks, but after folding the \
             widths are {widths:?} (experts kept per block differ). Use a top_k or fold threshold \
             that keeps the same number of experts in every PC-MoE block, or put PC-MoE in every block."
        );
    }
    let reg_tokens = match &vit.prompts {
        PromptSource::None => 0,
        PromptSource::Fixed { tokens, .. } => tokens.dim(0)?,
        PromptSource::Learned(_) => {
            bail!("the model still has learned prompts: fold it for one task first (--task)")
        }
    };
    let mut pos = vit.pos_embed.squeeze(0)?;
    // timm gives a pre-norm ViT's patch embedding no bias (`PatchEmbed(bias=not pre_norm)`):
    // ours goes into the grid's position embeddings, which every patch token also gets (and
    // which resampling moves as a constant: its weights sum to one).
    let patch_bias = match (&vit.norm_pre, &vit.patch_embed.bias) {
        (Some(_), Some(b)) => {
            let cells = pos.dim(0)? - 1;
            let grid = pos.narrow(0, 1, cells)?.broadcast_add(&b.unsqueeze(0)?)?;
            pos = Tensor::cat(&[&pos.narrow(0, 0, 1)?, &grid], 0)?;
            None
        }
        (_, bias) => bias.clone(),
    };
    let pos_embed = if reg_tokens > 0 {
        let zeros = Tensor::zeros((reg_tokens, d), pos.dtype(), pos.device())?;
        Tensor::cat(
            &[
                &pos.narrow(0, 0, 1)?,
                &zeros,
                &pos.narrow(0, 1, pos.dim(0)? - 1)?,
            ],
            0,
        )?
    } else {
        pos
    };
    sd.insert("pos_embed".into(), pos_embed.unsqueeze(0)?);
    if let PromptSource::Fixed { tokens, .. } = &vit.prompts {
        sd.insert("reg_token".into(), tokens.unsqueeze(0)?);
    }
    sd.insert("cls_token".into(), vit.cls_token.clone());
    sd.insert(
        "patch_embed.proj.weight".into(),
        vit.patch_embed.weight.clone(),
    );
    if let Some(b) = patch_bias {
        sd.insert("patch_embed.proj.bias".into(), b);
    }
    sd.insert("norm.weight".into(), vit.norm.weight.clone());
    sd.insert("norm.bias".into(), vit.norm.bias.clone());
    if let Some(norm) = &vit.norm_pre {
        sd.insert("norm_pre.weight".into(), norm.weight.clone());
        sd.insert("norm_pre.bias".into(), norm.bias.clone());
    }
    let sd = sd
        .into_iter()
        .map(|(k, v)| Ok((k, v.detach().contiguous()?)))
        .collect::<Result<BTreeMap<_, _>>>()?;
    let hidden = widths.first().copied().unwrap_or(vit.cfg.mlp_hidden());
    let kwargs = TimmKwargs {
        img_size: vit.cfg.img_size,
        patch_size: vit.cfg.patch_size,
        embed_dim: d,
        depth: vit.cfg.depth,
        num_heads: vit.cfg.num_heads,
        mlp_ratio: hidden as f64 / d as f64,
        qkv_bias: vit.cfg.qkv_bias,
        reg_tokens,
        num_classes: 0,
        global_pool: "token".into(),
        dynamic_img_size: true,
        pre_norm: vit.cfg.pre_norm,
        act_layer: vit.cfg.activation.name().into(),
    };
    Ok((sd, kwargs))
}
