//! A task model: the backbone with its task prompt and a plugin's head. Fine-tuning saves it as a
//! task checkpoint (backbone + prompt + head + a manifest naming the plugin); `clasp eval` and
//! `clasp predict` load it back with that plugin.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};

use crate::backbone::Backbone;
use crate::checkpoint::atomic::AtomicDir;
use crate::checkpoint::manifest::{PluginRef, Selection};
use crate::checkpoint::{self, backbone::read_tensors};
use crate::config::schema::PluginSettings;
use crate::distributed::World;
use crate::model::{Precision, Vit};
use crate::plugin_host::loader::find_task;
use crate::plugin_host::task_head::{HeadOutputs, TaskHead};
use crate::plugin_host::Plugin;

/// The head's tensors inside a task checkpoint.
pub const HEAD_FILE: &str = "head.safetensors";

pub struct TaskModel {
    pub backbone: Backbone,
    pub head: TaskHead,
    /// The backbone with this task's gates and prompt folded in, for inference (DESIGN §3).
    folded: Option<Vit>,
    /// The backbone's matrix products (`run.precision`); the plugin's head runs in f32.
    precision: Precision,
}

impl TaskModel {
    pub fn new(backbone: Backbone, head: TaskHead) -> Self {
        Self {
            backbone,
            head,
            folded: None,
            precision: Precision::F32,
        }
    }

    /// Gives this process rank 0's head buffers (batch norm's running statistics, which each
    /// process otherwise keeps from its own batches), as DDP's `broadcast_buffers` does: the
    /// processes then evaluate one model, the one rank 0 delivers.
    pub fn take_main_buffers(&self, world: &World) -> Result<()> {
        if world.size == 1 {
            return Ok(());
        }
        for (name, var) in self.head.state.buffers.vars() {
            let t = var.as_tensor();
            // The head's parameter store makes every buffer f32 (`ops::buffer`).
            anyhow::ensure!(
                t.dtype() == DType::F32,
                "head buffer {name} is {:?}, not f32",
                t.dtype()
            );
            let mut values: Vec<f32> = t.flatten_all()?.to_vec1()?;
            world.broadcast_f32(&mut values)?;
            let main = Tensor::from_vec(values, t.shape(), t.device())?;
            var.set(&main)
                .with_context(|| format!("taking rank 0's head buffer {name}"))?;
        }
        Ok(())
    }

    /// The same model with the backbone's products in `precision`.
    pub fn with_precision(self, precision: Precision) -> Self {
        Self { precision, ..self }
    }

    pub fn task(&self) -> &str {
        self.head.plugin.name()
    }

    /// The prompt the backbone runs with (none for a plain ViT).
    fn prompt_task(&self) -> Option<&str> {
        self.backbone.vit.cfg.prompts.as_ref().map(|_| self.task())
    }

    /// Input size [H, W] of the model.
    pub fn img_size(&self) -> [usize; 2] {
        self.backbone.manifest.img_size
    }

    /// Folds the task's gates and prompt into the backbone for faster inference; forward passes
    /// with `training = false` use the folded model from then on.
    pub fn fold_for_inference(&mut self, threshold: f64) -> Result<()> {
        self.folded = Some(self.backbone.for_inference(self.prompt_task(), threshold)?);
        Ok(())
    }

    /// The head's output for images `x` `[B, 3, H, W]`; without `training`, no gradient reaches
    /// the backbone and the head runs in evaluation mode.
    pub fn forward(&self, x: &Tensor, training: bool) -> Result<HeadOutputs> {
        let vit = match (&self.folded, training) {
            (Some(folded), false) => folded,
            _ => &self.backbone.vit,
        };
        let f = self
            .precision
            .scope(|| vit.forward(x, self.prompt_task()))?;
        if training {
            self.head.forward(&f.cls, &f.patches, true)
        } else {
            self.head
                .forward(&f.cls.detach(), &f.patches.detach(), false)
        }
    }

    /// Writes the task checkpoint `target/` atomically; `step` optimiser steps were taken.
    pub fn save(
        &self,
        target: &Path,
        step: u64,
        config_hash: &str,
        selection: Option<Selection>,
    ) -> Result<PathBuf> {
        let staging = AtomicDir::begin(target)?;
        self.write_into(&staging, step, config_hash, selection)?;
        staging.commit()
    }

    /// Writes the task checkpoint's files (weights, head, manifest) into a staging folder that
    /// the caller completes and commits.
    pub fn write_into(
        &self,
        staging: &AtomicDir,
        step: u64,
        config_hash: &str,
        selection: Option<Selection>,
    ) -> Result<()> {
        let bb = &self.backbone;
        let plugin = &self.head.plugin;
        let mut manifest = bb.manifest.clone();
        manifest.kind = "task".into();
        manifest.step = step;
        manifest.tasks = bb.vit.tasks();
        manifest.config_hash = config_hash.to_string();
        manifest.plugin = Some(PluginRef {
            name: plugin.name().to_string(),
            version: plugin.spec.version.to_string(),
            sha256: plugin.sha256.clone(),
            config: self.head.config.clone(),
        });
        manifest.selection = selection;
        checkpoint::backbone::write_into(
            staging,
            &bb.vit,
            &bb.store,
            &[(HEAD_FILE, self.head.state.tensors())],
            &manifest,
        )
    }

    /// Puts the weights of task checkpoint `dir`, written from a model built as this one, back
    /// into this model's variables (a resumed run, whose optimiser holds those variables).
    pub fn load_weights(&self, dir: &Path) -> Result<()> {
        let device = self.backbone.store.device();
        let weights = dir.join(checkpoint::manifest::WEIGHTS_FILE);
        let buffers = self.backbone.vit.buffers();
        let tensors = read_tensors(&weights, device)?
            .into_iter()
            .filter(|(k, _)| !buffers.contains_key(k))
            .collect();
        self.backbone
            .store
            .load_strict(&tensors)
            .with_context(|| format!("loading {}", weights.display()))?;
        let head = dir.join(HEAD_FILE);
        self.head
            .state
            .load_strict(read_tensors(&head, device)?)
            .with_context(|| format!("loading {}", head.display()))
    }

    /// Loads a task checkpoint and the plugin its manifest names (found through `plugins`).
    /// A plugin file whose sha256 differs from the one trained with is used, with a warning.
    pub fn load(dir: &Path, plugins: &PluginSettings, device: &Device) -> Result<Self> {
        let backbone = checkpoint::load(dir, device)?;
        let wanted = backbone.manifest.plugin.clone().with_context(|| {
            format!(
                "{}: a `{}` checkpoint, not a task checkpoint (its manifest names no plugin)",
                dir.display(),
                backbone.manifest.kind
            )
        })?;
        let plugin = find_task(plugins, &wanted.name).with_context(|| {
            format!(
                "{} needs the plugin of task `{}` (version {})",
                dir.display(),
                wanted.name,
                wanted.version
            )
        })?;
        Self::load_with(dir, backbone, wanted, plugin, device)
    }

    /// Loads the task checkpoint `dir` with `plugin`, which a run that just wrote it holds.
    pub fn load_with_plugin(dir: &Path, plugin: Plugin, device: &Device) -> Result<Self> {
        let backbone = checkpoint::load(dir, device)?;
        let wanted = backbone
            .manifest
            .plugin
            .clone()
            .with_context(|| format!("{}: not a task checkpoint", dir.display()))?;
        Self::load_with(dir, backbone, wanted, plugin, device)
    }

    fn load_with(
        dir: &Path,
        backbone: Backbone,
        wanted: PluginRef,
        plugin: Plugin,
        device: &Device,
    ) -> Result<Self> {
        if plugin.sha256 != wanted.sha256 {
            tracing::warn!(
                "{}: trained with plugin `{}` {} (sha256 {}), loading {} {} (sha256 {})",
                dir.display(),
                wanted.name,
                wanted.version,
                &wanted.sha256[..12.min(wanted.sha256.len())],
                plugin.path.display(),
                plugin.spec.version,
                &plugin.sha256[..12]
            );
        }
        let path = dir.join(HEAD_FILE);
        let dim = backbone.vit.cfg.embed_dim;
        let head = TaskHead::restore(
            plugin,
            wanted.config,
            dim,
            device,
            read_tensors(&path, device)?,
        )
        .with_context(|| {
            format!(
                "loading {} into the head `{}` builds",
                path.display(),
                wanted.name
            )
        })?;
        Ok(Self::new(backbone, head))
    }
}
