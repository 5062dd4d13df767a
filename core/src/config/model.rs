//! From model settings to the architecture ([`VitConfig`]).

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::schema::ModelSettings;
use crate::model::{MoeConfig, PromptConfig, VitConfig};

/// Which blocks carry PC-MoE, as written in `model.moe.blocks`: `"all"`, `"last:N"` or
/// `"i,j,k"` in TOML, read and written through that string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum BlockSpec {
    All,
    Last(usize),
    List(Vec<usize>),
}

impl BlockSpec {
    /// Reads `"all"`, `"last:N"` or `"i,j,k"`.
    pub fn parse(spec: &str) -> Result<Self> {
        let spec = spec.trim();
        let err = || {
            format!(
                "config key `model.moe.blocks`: cannot read `{spec}` (use \"all\", \"last:N\" or \"0,3,5\")"
            )
        };
        if spec == "all" {
            return Ok(Self::All);
        }
        if let Some(n) = spec.strip_prefix("last:") {
            return Ok(Self::Last(n.trim().parse().with_context(err)?));
        }
        let list = spec
            .split(',')
            .map(|s| s.trim().parse::<usize>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .with_context(err)?;
        Ok(Self::List(list))
    }

    pub fn resolve(&self, depth: usize) -> Result<Vec<usize>> {
        match self {
            Self::All => Ok((0..depth).collect()),
            Self::Last(n) if *n > depth => {
                bail!("config key `model.moe.blocks`: last:{n} but the model has {depth} blocks")
            }
            Self::Last(n) => Ok((depth - n..depth).collect()),
            Self::List(list) => {
                if let Some(b) = list.iter().find(|b| **b >= depth) {
                    bail!(
                        "config key `model.moe.blocks`: block {b} does not exist (depth {depth})"
                    );
                }
                Ok(list.clone())
            }
        }
    }
}

impl TryFrom<String> for BlockSpec {
    type Error = String;

    fn try_from(s: String) -> std::result::Result<Self, String> {
        Self::parse(&s).map_err(|e| format!("{e:#}"))
    }
}

impl From<BlockSpec> for String {
    fn from(b: BlockSpec) -> String {
        match b {
            BlockSpec::All => "all".into(),
            BlockSpec::Last(n) => format!("last:{n}"),
            BlockSpec::List(list) => list
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

pub fn vit_config(m: &ModelSettings) -> Result<VitConfig> {
    let mut cfg = VitConfig::preset(m.preset);
    cfg.img_size = m.img_size;
    cfg.patch_size = m.patch_size;
    cfg.pre_norm = m.pre_norm;
    cfg.activation = m.activation;
    cfg.norm_eps = m.norm_eps;
    if m.prompts.enabled {
        cfg.prompts = Some(PromptConfig {
            num_tokens: m.prompts.num_tokens,
            text_dim: m.prompts.text_dim,
        });
    }
    if m.moe.enabled {
        cfg.moe = Some(MoeConfig {
            num_experts: m.moe.num_experts,
            expert_hidden: ((cfg.embed_dim as f64) * m.moe.expert_ratio).round() as usize,
            temperature: m.moe.temperature,
            top_k: m.moe.top_k,
            blocks: m.moe.blocks.resolve(cfg.depth)?,
        });
    }
    cfg.validate()?;
    Ok(cfg)
}
