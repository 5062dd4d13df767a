//! The prompt of a downstream task: a backbone with prompts gets one for the task it is adapted
//! to, seeded from the task's description sentence (DESIGN §3), unless it already has one.

use std::path::Path;

use anyhow::Result;
use candle_core::Device;

use crate::backbone::Backbone;
use crate::checkpoint;
use crate::config::Config;
use crate::plugin_host::Plugin;
use crate::run_dir::RunDir;
use crate::task_embedding::{hashed_text_embedding, read_text_embedding};
use crate::teacher::task_text::TaskTextEmbedder;

/// The backbone a task starts from — the checkpoint in `backbone_dir`, or fresh weights without
/// one — with a prompt for the plugin's task.
pub fn task_backbone(
    config: &Config,
    plugin: &Plugin,
    backbone_dir: Option<&Path>,
    run: &RunDir,
    device: &Device,
) -> Result<Backbone> {
    let mut bb = match backbone_dir {
        Some(dir) => checkpoint::load(dir, device)?,
        None => Backbone::fresh(config, device, run.config_hash.clone())?,
    };
    add_task_prompt(
        &mut bb,
        config,
        plugin.name(),
        plugin.spec.description.as_str(),
    )?;
    Ok(bb)
}

/// Gives `bb` a prompt for `task` when it has prompts but none for `task`: from
/// `finetune.task_embedding`, else the teacher's embedding of `description`
/// (`model.prompts.teacher`), else a fixed vector hashed from `description`.
pub fn add_task_prompt(
    bb: &mut Backbone,
    config: &Config,
    task: &str,
    description: &str,
) -> Result<()> {
    if let Some(p) = bb.vit.cfg.prompts.clone() {
        let configured = config.finetune.task_embedding.clone();
        if bb.vit.tasks().iter().any(|t| t == task) {
            if let Some(path) = configured {
                tracing::warn!(
                    "the backbone already has a `{task}` prompt; {} (finetune.task_embedding) is not used",
                    path.display()
                );
            }
        } else if let Some(path) = configured {
            bb.vit
                .add_task(task, &read_text_embedding(&path, p.text_dim)?)?;
            tracing::info!(task, "new task prompt from {}", path.display());
        } else if let Some(teacher) = &config.model.prompts.teacher {
            let e = TaskTextEmbedder::load(teacher, p.text_dim)?.embed(description)?;
            bb.vit.add_task(task, &e)?;
            tracing::info!(
                task,
                "new task prompt from the teacher's embedding of the description"
            );
        } else {
            let e = hashed_text_embedding(description, p.text_dim)?;
            bb.vit.add_task(task, &e)?;
            tracing::info!(
                task,
                "new task prompt from the description sentence (no teacher configured)"
            );
        }
    }

    Ok(())
}
