//! Task prompts: P_t = Proj(e_t) + Δ_t ∈ R^{m×d} (DESIGN §3).
//!
//! e_t is the text embedding of the task's description sentence (a buffer, not trained); Proj is
//! shared by all tasks and learned in pre-training; Δ_t is the task's own learnable offset, zero at
//! creation so a new task starts from what its description means.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use candle_core::{Module, Tensor};

use super::layers::Linear;
use super::params::{Init, Scope};

#[derive(Clone)]
pub struct TaskPrompts {
    pub proj: Linear,
    deltas: BTreeMap<String, Tensor>,
    text: BTreeMap<String, Tensor>,
    num_tokens: usize,
    dim: usize,
    text_dim: usize,
    scope: Scope,
}

/// Task names become parameter names, so they are restricted to `[a-z0-9_-]`.
pub fn validate_task_name(name: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    {
        bail!("task name `{name}` must be non-empty and use only a-z, 0-9, `_` and `-`");
    }
    Ok(())
}

impl TaskPrompts {
    pub fn new(scope: &Scope, num_tokens: usize, dim: usize, text_dim: usize) -> Result<Self> {
        Ok(Self {
            proj: Linear::new(&scope.pp("proj"), text_dim, num_tokens * dim, true)?,
            deltas: BTreeMap::new(),
            text: BTreeMap::new(),
            num_tokens,
            dim,
            text_dim,
            scope: scope.clone(),
        })
    }

    pub fn detached(&self) -> Self {
        Self {
            proj: self.proj.detached(),
            deltas: self
                .deltas
                .iter()
                .map(|(k, v)| (k.clone(), v.detach()))
                .collect(),
            text: self
                .text
                .iter()
                .map(|(k, v)| (k.clone(), v.detach()))
                .collect(),
            ..self.clone()
        }
    }

    pub fn num_tokens(&self) -> usize {
        self.num_tokens
    }

    pub fn tasks(&self) -> Vec<String> {
        self.text.keys().cloned().collect()
    }

    pub fn has_task(&self, task: &str) -> bool {
        self.text.contains_key(task)
    }

    /// Adds task `name` with description embedding `text_embedding` (`[text_dim]`, L2-normalised
    /// here). Its Δ is created as a trainable variable `prompts.delta.<name>`.
    pub fn add_task(&mut self, name: &str, text_embedding: &Tensor) -> Result<()> {
        validate_task_name(name)?;
        if text_embedding.dims() != [self.text_dim] {
            bail!(
                "text embedding of task `{name}` has shape {:?}, expected [{}]",
                text_embedding.dims(),
                self.text_dim
            );
        }
        let e = text_embedding
            .to_device(self.scope.device())?
            .to_dtype(self.scope.dtype())?;
        let norm = e
            .sqr()?
            .sum_all()?
            .sqrt()?
            .to_dtype(candle_core::DType::F64)?
            .to_scalar::<f64>()?;
        let e = if norm > 0.0 { (e / norm)? } else { e };
        let delta = self.scope.get(
            &format!("delta.{name}"),
            &[self.num_tokens, self.dim],
            Init::Zeros,
        )?;
        self.deltas.insert(name.to_string(), delta);
        self.text.insert(name.to_string(), e);
        Ok(())
    }

    /// P_t, `[m, d]`.
    pub fn prompt(&self, task: &str) -> Result<Tensor> {
        let e = self.text.get(task).with_context(|| {
            format!(
                "unknown task `{task}` (the model has prompts for: {:?})",
                self.tasks()
            )
        })?;
        let projected = self
            .proj
            .forward(&e.unsqueeze(0)?)?
            .reshape((self.num_tokens, self.dim))?;
        Ok((projected + &self.deltas[task])?)
    }

    /// The non-trainable text embeddings, named as they are saved in checkpoints.
    pub fn buffers(&self) -> BTreeMap<String, Tensor> {
        self.text
            .iter()
            .map(|(k, v)| (self.scope.name(&format!("text_embed.{k}")), v.clone()))
            .collect()
    }

    /// Prefix of buffer names, to recognise them in a checkpoint.
    pub fn buffer_prefix(&self) -> String {
        self.scope.name("text_embed.")
    }
}
