//! Vision Transformer with timm's parameter names, task prompts and PC-MoE blocks.
//!
//! Token layout: `[CLS, prompt_1..prompt_m, patch_1..patch_N]`. The position embedding covers CLS
//! and patches (timm's layout) and is added before the prompt tokens are inserted, so a prompt
//! behaves as a timm register token with zero position embedding.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use candle_core::{Module, Tensor};

use super::attention::Attention;
use super::config::VitConfig;
use super::layers::{LayerNorm, Linear};
use super::mlp::Mlp;
use super::params::{Init, ParamStore};
use super::pcmoe::PcMoe;
use super::pos_embed::resample_grid;
use super::prompts::TaskPrompts;

/// The feed-forward half of a block.
#[derive(Clone, Debug)]
pub enum BlockMlp {
    Plain(Mlp),
    Moe(PcMoe),
}

#[derive(Clone, Debug)]
pub struct Block {
    pub norm1: LayerNorm,
    pub attn: Attention,
    pub norm2: LayerNorm,
    pub mlp: BlockMlp,
}

impl Block {
    pub fn detached(&self) -> Self {
        Self {
            norm1: self.norm1.detached(),
            attn: self.attn.detached(),
            norm2: self.norm2.detached(),
            mlp: match &self.mlp {
                BlockMlp::Plain(m) => BlockMlp::Plain(m.detached()),
                BlockMlp::Moe(m) => BlockMlp::Moe(m.detached()),
            },
        }
    }

    /// `s` is the task summary (mean prompt token), needed by PC-MoE blocks only.
    pub fn forward(&self, x: &Tensor, s: Option<&Tensor>) -> Result<Tensor> {
        let x = (x + self.attn.forward(&self.norm1.forward(x)?)?)?;
        let h = self.norm2.forward(&x)?;
        let h = match &self.mlp {
            BlockMlp::Plain(mlp) => mlp.forward(&h)?,
            BlockMlp::Moe(moe) => {
                let s = s.context("a PC-MoE block needs a task prompt: pass a task")?;
                moe.forward(&h, s)?
            }
        };
        Ok((x + h)?)
    }
}

/// Where prompt tokens come from.
#[derive(Clone)]
pub enum PromptSource {
    None,
    /// Learned per-task prompts (training, unfolded inference).
    Learned(TaskPrompts),
    /// One task's prompt frozen into constant tokens (a folded model).
    Fixed {
        task: String,
        tokens: Tensor,
    },
}

/// Multi-level features of a batch.
#[derive(Clone, Debug)]
pub struct VitOutput {
    /// Final-normed CLS token, `[B, d]`.
    pub cls: Tensor,
    /// Final-normed patch tokens as a map, `[B, d, H/16, W/16]`.
    pub patches: Tensor,
}

impl VitOutput {
    /// Mean of the patch tokens, `[B, d]`.
    pub fn pooled_patches(&self) -> candle_core::Result<Tensor> {
        self.patches.flatten_from(2)?.mean(2)
    }
}

#[derive(Clone)]
pub struct Vit {
    pub cfg: VitConfig,
    /// Conv weight `[d, 3, p, p]` applied as a matmul over non-overlapping patches.
    pub patch_embed: Linear,
    pub cls_token: Tensor,
    pub pos_embed: Tensor,
    /// Normalises the embedded tokens before the first block (`model.pre_norm`).
    pub norm_pre: Option<LayerNorm>,
    pub blocks: Vec<Block>,
    pub norm: LayerNorm,
    pub prompts: PromptSource,
}

impl Vit {
    /// Builds a model whose variables live in `store` under timm's names.
    pub fn new(cfg: &VitConfig, store: &ParamStore) -> Result<Self> {
        cfg.validate()?;
        let root = store.root();
        let d = cfg.embed_dim;
        let p = cfg.patch_size;
        let (gh, gw) = cfg.grid();
        let patch_w = root.get(
            "patch_embed.proj.weight",
            &[d, 3, p, p],
            Init::TruncNormal(0.02),
        )?;
        let patch_b = root.get("patch_embed.proj.bias", &[d], Init::Zeros)?;
        let cls_token = root.get("cls_token", &[1, 1, d], Init::TruncNormal(1e-6))?;
        let pos_embed = root.get("pos_embed", &[1, 1 + gh * gw, d], Init::TruncNormal(0.02))?;
        let norm_pre = match cfg.pre_norm {
            true => Some(LayerNorm::new(&root.pp("norm_pre"), d, cfg.norm_eps)?),
            false => None,
        };
        let mut blocks = Vec::with_capacity(cfg.depth);
        for i in 0..cfg.depth {
            let s = root.pp("blocks").pp(i);
            let mlp = match (&cfg.moe, cfg.is_moe_block(i)) {
                (Some(m), true) => BlockMlp::Moe(PcMoe::new(
                    &s.pp("moe"),
                    d,
                    m.num_experts,
                    m.expert_hidden,
                    m.temperature,
                    m.top_k,
                    cfg.activation,
                )?),
                _ => BlockMlp::Plain(Mlp::new(&s.pp("mlp"), d, cfg.mlp_hidden(), cfg.activation)?),
            };
            blocks.push(Block {
                norm1: LayerNorm::new(&s.pp("norm1"), d, cfg.norm_eps)?,
                attn: Attention::new(&s.pp("attn"), d, cfg.num_heads, cfg.qkv_bias)?,
                norm2: LayerNorm::new(&s.pp("norm2"), d, cfg.norm_eps)?,
                mlp,
            });
        }
        let norm = LayerNorm::new(&root.pp("norm"), d, cfg.norm_eps)?;
        let prompts = match &cfg.prompts {
            Some(pc) => PromptSource::Learned(TaskPrompts::new(
                &root.pp("prompts"),
                pc.num_tokens,
                d,
                pc.text_dim,
            )?),
            None => PromptSource::None,
        };
        Ok(Self {
            cfg: cfg.clone(),
            patch_embed: Linear::from_tensors(patch_w, Some(patch_b)),
            cls_token,
            pos_embed,
            norm_pre,
            blocks,
            norm,
            prompts,
        })
    }

    pub fn learned_prompts(&self) -> Option<&TaskPrompts> {
        match &self.prompts {
            PromptSource::Learned(p) => Some(p),
            _ => None,
        }
    }

    pub fn learned_prompts_mut(&mut self) -> Option<&mut TaskPrompts> {
        match &mut self.prompts {
            PromptSource::Learned(p) => Some(p),
            _ => None,
        }
    }

    /// Adds a task prompt; an error when the model has no learned prompts.
    pub fn add_task(&mut self, name: &str, text_embedding: &Tensor) -> Result<()> {
        match &mut self.prompts {
            PromptSource::Learned(p) => p.add_task(name, text_embedding),
            _ => bail!("this model has no learned task prompts (prompts disabled or folded)"),
        }
    }

    pub fn tasks(&self) -> Vec<String> {
        match &self.prompts {
            PromptSource::None => vec![],
            PromptSource::Learned(p) => p.tasks(),
            PromptSource::Fixed { task, .. } => vec![task.clone()],
        }
    }

    /// Non-trainable tensors that belong in a checkpoint (the tasks' text embeddings).
    pub fn buffers(&self) -> BTreeMap<String, Tensor> {
        self.learned_prompts()
            .map(TaskPrompts::buffers)
            .unwrap_or_default()
    }

    fn num_prompt_tokens(&self) -> usize {
        match &self.prompts {
            PromptSource::None => 0,
            PromptSource::Learned(p) => p.num_tokens(),
            PromptSource::Fixed { tokens, .. } => tokens.dims()[0],
        }
    }

    /// The prompt tokens `[m, d]` for `task`, or `None` for a model without prompts.
    pub fn prompt_tokens(&self, task: Option<&str>) -> Result<Option<Tensor>> {
        match (&self.prompts, task) {
            (PromptSource::None, _) => Ok(None),
            (PromptSource::Learned(p), Some(t)) => Ok(Some(p.prompt(t)?)),
            (PromptSource::Learned(p), None) => bail!(
                "this model has task prompts: name a task (one of {:?})",
                p.tasks()
            ),
            (
                PromptSource::Fixed {
                    task: fixed,
                    tokens,
                },
                t,
            ) => {
                if let Some(t) = t.filter(|t| *t != fixed) {
                    bail!("this model is folded for task `{fixed}`, not `{t}`");
                }
                Ok(Some(tokens.clone()))
            }
        }
    }

    /// Patch tokens `[B, N, d]` plus the (resampled) position embedding, with CLS in front.
    fn embed(&self, images: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = images.dims4()?;
        let p = self.cfg.patch_size;
        if c != 3 || h % p != 0 || w % p != 0 {
            bail!(
                "input of shape {:?} must be [B, 3, H, W] with H and W multiples of {p}",
                images.dims()
            );
        }
        let (gh, gw) = (h / p, w / p);
        let d = self.cfg.embed_dim;
        // Non-overlapping p×p patches flattened in (c, kh, kw) order, as the conv weight.
        let patches = images
            .reshape((b, c, gh, p, gw, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .reshape((b, gh * gw, c * p * p))?;
        let proj = Linear::from_tensors(
            self.patch_embed.weight.reshape((d, c * p * p))?,
            self.patch_embed.bias.clone(),
        );
        let x = proj.forward(&patches)?;
        let pos = self.pos_embed.squeeze(0)?;
        let cls_pos = pos.narrow(0, 0, 1)?;
        let grid_pos = resample_grid(
            &pos.narrow(0, 1, pos.dim(0)? - 1)?,
            self.cfg.grid(),
            (gh, gw),
        )?;
        let x = x.broadcast_add(&grid_pos.unsqueeze(0)?)?;
        let cls = self
            .cls_token
            .broadcast_add(&cls_pos.unsqueeze(0)?)?
            .broadcast_as((b, 1, d))?;
        Ok(Tensor::cat(&[&cls, &x], 1)?)
    }

    /// Runs the backbone on `[B, 3, H, W]` images (any H, W multiples of the patch size) for
    /// `task` (needed when the model has prompts).
    pub fn forward(&self, images: &Tensor, task: Option<&str>) -> Result<VitOutput> {
        let (b, _, h, w) = images.dims4()?;
        let p = self.cfg.patch_size;
        let x = self.embed(images)?;
        let prompt = self.prompt_tokens(task)?;
        let m = self.num_prompt_tokens();
        let (x, summary) = match &prompt {
            Some(pt) => {
                let d = self.cfg.embed_dim;
                let tokens = pt.unsqueeze(0)?.broadcast_as((b, m, d))?;
                let x = Tensor::cat(
                    &[
                        &x.narrow(1, 0, 1)?,
                        &tokens,
                        &x.narrow(1, 1, x.dim(1)? - 1)?,
                    ],
                    1,
                )?;
                (x, Some(pt.mean(0)?))
            }
            None => (x, None),
        };
        // timm normalises register tokens with the rest; prompts take their place.
        let mut x = match &self.norm_pre {
            Some(norm) => norm.forward(&x)?,
            None => x,
        };
        for block in &self.blocks {
            x = block.forward(&x, summary.as_ref())?;
        }
        let x = self.norm.forward(&x)?;
        let n = x.dim(1)?;
        let cls = x.narrow(1, 0, 1)?.squeeze(1)?;
        let patches = x.narrow(1, 1 + m, n - 1 - m)?.transpose(1, 2)?.reshape((
            b,
            self.cfg.embed_dim,
            h / p,
            w / p,
        ))?;
        Ok(VitOutput { cls, patches })
    }

    /// Multiply-adds per image at input `h`×`w`, counting what the forward actually runs.
    pub fn flops(&self, h: usize, w: usize) -> u64 {
        let p = self.cfg.patch_size;
        let d = self.cfg.embed_dim as u64;
        let n_patches = (h / p) * (w / p);
        let n = 1 + self.num_prompt_tokens() + n_patches;
        let mut total = n_patches as u64 * d * (3 * p * p) as u64;
        for block in &self.blocks {
            total += block.attn.flops(n);
            total += n as u64
                * match &block.mlp {
                    BlockMlp::Plain(m) => m.flops_per_token(),
                    BlockMlp::Moe(m) => m.flops_per_token(),
                };
        }
        total
    }

    /// The same model on plain tensors, for inference: no op records its inputs for a backward,
    /// so activations are freed as soon as the next layer has used them.
    pub fn detached(&self) -> Vit {
        Vit {
            cfg: self.cfg.clone(),
            patch_embed: self.patch_embed.detached(),
            cls_token: self.cls_token.detach(),
            pos_embed: self.pos_embed.detach(),
            norm_pre: self.norm_pre.as_ref().map(LayerNorm::detached),
            blocks: self.blocks.iter().map(Block::detached).collect(),
            norm: self.norm.detached(),
            prompts: match &self.prompts {
                PromptSource::None => PromptSource::None,
                PromptSource::Learned(p) => PromptSource::Learned(p.detached()),
                PromptSource::Fixed { task, tokens } => PromptSource::Fixed {
                    task: task.clone(),
                    tokens: tokens.detach(),
                },
            },
        }
    }

    /// The model with task `task`'s gates folded in: PC-MoE blocks become plain MLPs (experts
    /// with global gate ≤ `threshold` dropped) and the prompt becomes constant tokens. The result
    /// holds detached tensors and is meant for inference and export.
    pub fn fold(&self, task: &str, threshold: f64) -> Result<Vit> {
        let prompt = self
            .prompt_tokens(Some(task))?
            .context("folding needs a model with task prompts")?
            .detach();
        let summary = prompt.mean(0)?;
        let mut folded = self.clone();
        for block in &mut folded.blocks {
            if let BlockMlp::Moe(moe) = &block.mlp {
                block.mlp = BlockMlp::Plain(moe.fold(&summary, threshold)?);
            }
        }
        folded.prompts = PromptSource::Fixed {
            task: task.to_string(),
            tokens: prompt,
        };
        Ok(folded)
    }
}
