//! Architecture of the backbone: a timm-style ViT, optionally with task prompts and PC-MoE.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::activation::Activation;

/// Task prompts: `m` learnable tokens per task, seeded from a text embedding (DESIGN §3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptConfig {
    /// Prompt tokens per task (m).
    pub num_tokens: usize,
    /// Width of the text embedding e_t that seeds each prompt.
    pub text_dim: usize,
}

/// Prompt-controlled mixture of experts in the MLP position of some blocks (DESIGN §3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoeConfig {
    pub num_experts: usize,
    /// Hidden width of each expert MLP.
    pub expert_hidden: usize,
    /// Temperature τ of the global gate softmax.
    pub temperature: f64,
    /// Keep only the k largest global gates (renormalised); `None` is dense.
    pub top_k: Option<usize>,
    /// Indices of the blocks whose MLP is a PC-MoE.
    pub blocks: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VitConfig {
    pub embed_dim: usize,
    pub depth: usize,
    pub num_heads: usize,
    pub mlp_ratio: f64,
    pub patch_size: usize,
    /// Native input size [H, W]; other sizes interpolate the position embedding.
    pub img_size: [usize; 2],
    pub qkv_bias: bool,
    pub norm_eps: f64,
    /// A layer norm between the embeddings and the first block (timm's `norm_pre`, CLIP's
    /// `pre_layrnorm`). Absent from manifests written before it existed: false.
    #[serde(default)]
    pub pre_norm: bool,
    /// The MLPs' activation (exact GELU unless the weights come from CLIP).
    #[serde(default)]
    pub activation: Activation,
    pub prompts: Option<PromptConfig>,
    pub moe: Option<MoeConfig>,
}

/// The named sizes of DESIGN §3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    Nano,
    Tiny,
    Small,
    Base,
}

impl Preset {
    pub const ALL: [Preset; 4] = [Self::Nano, Self::Tiny, Self::Small, Self::Base];

    /// The name configs and manifests spell it with.
    pub fn name(self) -> &'static str {
        match self {
            Self::Nano => "nano",
            Self::Tiny => "tiny",
            Self::Small => "small",
            Self::Base => "base",
        }
    }

    /// Width, depth and heads.
    fn dims(self) -> (usize, usize, usize) {
        match self {
            Self::Nano => (64, 4, 2),
            Self::Tiny => (192, 12, 3),
            Self::Small => (384, 12, 6),
            Self::Base => (768, 12, 12),
        }
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Preset {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match Self::ALL.into_iter().find(|p| p.name() == s) {
            Some(p) => Ok(p),
            None => bail!(
                "unknown model preset `{s}` (known: {})",
                Self::ALL.map(Self::name).join(", ")
            ),
        }
    }
}

impl VitConfig {
    /// A plain ViT (no prompts, no MoE) of a named size at the default 256×128 input.
    pub fn preset(preset: Preset) -> Self {
        let (embed_dim, depth, num_heads) = preset.dims();
        Self {
            embed_dim,
            depth,
            num_heads,
            mlp_ratio: 4.0,
            patch_size: 16,
            img_size: [256, 128],
            qkv_bias: true,
            norm_eps: 1e-6,
            pre_norm: false,
            activation: Activation::Gelu,
            prompts: None,
            moe: None,
        }
    }

    /// Default prompts and PC-MoE on every block: 4 experts of width `embed_dim`, so the expert
    /// FLOPs equal the plain MLP's and parameters stay ≤ 1.5× the plain ViT's.
    pub fn with_clasp_defaults(mut self) -> Self {
        self.prompts = Some(PromptConfig {
            num_tokens: 4,
            text_dim: 512,
        });
        self.moe = Some(MoeConfig {
            num_experts: 4,
            expert_hidden: self.embed_dim,
            temperature: 1.0,
            top_k: None,
            blocks: (0..self.depth).collect(),
        });
        self
    }

    pub fn mlp_hidden(&self) -> usize {
        (self.embed_dim as f64 * self.mlp_ratio) as usize
    }

    pub fn grid(&self) -> (usize, usize) {
        (
            self.img_size[0] / self.patch_size,
            self.img_size[1] / self.patch_size,
        )
    }

    /// How the computation of `self` differs from `other`'s with the same weights, one
    /// `key: self vs other` line each (the shapes the weights themselves check).
    pub fn computation_differences(&self, other: &VitConfig) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |key: &str, a: String, b: String| {
            if a != b {
                out.push(format!("{key}: {a} vs {b}"));
            }
        };
        check(
            "model.pre_norm",
            self.pre_norm.to_string(),
            other.pre_norm.to_string(),
        );
        check(
            "model.activation",
            self.activation.to_string(),
            other.activation.to_string(),
        );
        check(
            "model.norm_eps",
            format!("{:e}", self.norm_eps),
            format!("{:e}", other.norm_eps),
        );
        check(
            "model.patch_size",
            self.patch_size.to_string(),
            other.patch_size.to_string(),
        );
        out
    }

    pub fn is_moe_block(&self, i: usize) -> bool {
        self.moe.as_ref().is_some_and(|m| m.blocks.contains(&i))
    }

    pub fn validate(&self) -> Result<()> {
        if !(self.norm_eps > 0.0 && self.norm_eps.is_finite()) {
            bail!(
                "model.norm_eps = {} must be a positive number",
                self.norm_eps
            );
        }
        if !self.embed_dim.is_multiple_of(self.num_heads) {
            bail!(
                "embed_dim {} is not divisible by num_heads {}",
                self.embed_dim,
                self.num_heads
            );
        }
        for (i, s) in self.img_size.iter().enumerate() {
            if *s == 0 || s % self.patch_size != 0 {
                bail!(
                    "img_size[{i}] = {s} is not a positive multiple of the patch size {}",
                    self.patch_size
                );
            }
        }
        if let Some(moe) = &self.moe {
            if self.prompts.is_none() {
                bail!("PC-MoE needs task prompts: its gates are computed from the prompt");
            }
            if moe.num_experts == 0 || moe.expert_hidden == 0 {
                bail!("PC-MoE needs at least one expert of non-zero width");
            }
            if let Some(k) = moe.top_k {
                if k == 0 || k > moe.num_experts {
                    bail!("moe top_k = {k} must be in 1..={}", moe.num_experts);
                }
            }
            if moe.temperature <= 0.0 {
                bail!("moe temperature must be positive, got {}", moe.temperature);
            }
            if let Some(b) = moe.blocks.iter().find(|b| **b >= self.depth) {
                bail!("moe block {b} does not exist (depth {})", self.depth);
            }
        }
        if let Some(p) = &self.prompts {
            if p.num_tokens == 0 || p.text_dim == 0 {
                bail!("prompts need num_tokens ≥ 1 and text_dim ≥ 1");
            }
        }
        Ok(())
    }
}
