//! A backbone: the ViT, the store that owns its variables, and the manifest describing it.

use anyhow::Result;
use candle_core::Device;

use crate::checkpoint::Manifest;
use crate::config::{model::vit_config, Config};
use crate::model::{ParamStore, Vit};
use crate::task_embedding::hashed_text_embedding;
use crate::teacher::task_text::{pretrain_task_description, TaskTextEmbedder};
use std::path::Path;

pub struct Backbone {
    pub vit: Vit,
    pub store: ParamStore,
    pub manifest: Manifest,
}

impl Backbone {
    /// A randomly initialised backbone (seed `run.seed`) with the configured task prompts.
    pub fn fresh(config: &Config, device: &Device, config_hash: String) -> Result<Self> {
        let cfg = vit_config(&config.model)?;
        let store = ParamStore::new(device, config.run.seed);
        let mut vit = Vit::new(&cfg, &store)?;
        let mut tasks = Vec::new();
        if let Some(p) = &cfg.prompts {
            let teacher = config.model.prompts.teacher.as_deref();
            let embedder = teacher
                .map(|t| TaskTextEmbedder::load(t, p.text_dim))
                .transpose()?;
            for task in &config.model.prompts.tasks {
                let sentence = pretrain_task_description(task).unwrap_or(task);
                let e = match &embedder {
                    Some(t) => t.embed(sentence)?,
                    None => hashed_text_embedding(task, p.text_dim)?,
                };
                vit.add_task(task, &e)?;
                tasks.push(task.clone());
            }
            if embedder.is_some() {
                tracing::info!(
                    ?tasks,
                    teacher = %teacher.unwrap_or(Path::new("")).display(),
                    "task prompts seeded by the teacher's text embeddings"
                );
            } else if !tasks.is_empty() {
                tracing::info!(
                    ?tasks,
                    "task prompts seeded from name-hashed embeddings (no teacher configured)"
                );
            }
        }
        let manifest =
            Manifest::new_backbone(config.model.preset.name(), &cfg, tasks, 0, config_hash);
        Ok(Self {
            vit,
            store,
            manifest,
        })
    }
}

impl Backbone {
    /// An independent copy to be run and updated in place, never trained (DINO's EMA teacher
    /// starts as such a copy of the student): the same architecture, tasks and values in a
    /// frozen store of its own ([`ParamStore::frozen`]), so its forward passes record no graph.
    pub fn frozen_copy(&self) -> Result<Self> {
        let store = ParamStore::frozen(self.store.device());
        let mut vit = Vit::new(&self.vit.cfg, &store)?;
        let buffers = self.vit.buffers();
        for task in self.vit.tasks() {
            let key = format!("prompts.text_embed.{task}");
            let e = buffers
                .get(&key)
                .ok_or_else(|| anyhow::anyhow!("task `{task}` has no `{key}`"))?;
            vit.add_task(&task, e)?;
        }
        store.load_strict(&self.store.tensors())?;
        Ok(Self {
            vit,
            store,
            manifest: self.manifest.clone(),
        })
    }

    /// The model inference runs: for a model with prompts, `task`'s gates and prompt folded in
    /// (DESIGN §3); a plain ViT is returned as it is.
    pub fn for_inference(&self, task: Option<&str>, fold_threshold: f64) -> Result<Vit> {
        if self.vit.cfg.prompts.is_none() {
            if let Some(t) = task {
                anyhow::bail!("this backbone has no task prompts; drop --task {t}");
            }
            return Ok(self.vit.clone());
        }
        let tasks = self.vit.tasks();
        let task = task.ok_or_else(|| {
            anyhow::anyhow!("this backbone has task prompts: pass --task (one of {tasks:?})")
        })?;
        self.vit.fold(task, fold_threshold)
    }
}
