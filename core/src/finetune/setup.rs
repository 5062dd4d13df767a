//! What fine-tuning's epochs run on, steps 1–4 of the loop: the task's settings and data, the
//! backbone with the task's prompt, the plugin's head, the data loader and the optimiser.

use std::path::Path;

use anyhow::Result;
use candle_core::Device;
use clasp_sdk::Record;

use super::data::{probe_flip, task_loader, TaskImages, TaskSplits, TrainOrder};
use super::task_model::TaskModel;
use super::task_prompt::task_backbone;
use crate::config::Config;
use crate::data::loader::Loader;
use crate::distributed::gradients::broadcast_parameters;
use crate::distributed::World;
use crate::optim::{backbone_and_head_groups, AdamW, CosineSchedule};
use crate::plugin_host::task_config::resolve;
use crate::plugin_host::task_head::{RecordFlip, TaskHead};
use crate::plugin_host::Plugin;
use crate::run_dir::RunDir;

/// What the epochs run on (steps 1–4 of the loop).
pub struct Setup {
    pub task_config: String,
    pub train_records: Vec<Record>,
    pub val: Vec<Record>,
    pub test: Vec<Record>,
    pub model: TaskModel,
    pub train_loader: Loader<TaskImages>,
    pub opt: AdamW,
    pub schedule: CosineSchedule,
}

impl Setup {
    pub fn new(
        config: &Config,
        plugin: &Plugin,
        backbone_dir: Option<&Path>,
        run: &RunDir,
        device: &Device,
        world: &World,
    ) -> Result<Self> {
        let ft = &config.finetune;
        let task = plugin.name();
        // 1. The task's settings and data, as the plugin reads them.
        let task_config = resolve(plugin, &config.task)?;
        let splits = TaskSplits::load(plugin, &task_config, ft.data.as_deref())?;
        splits.warn_without_validation(task);
        let TaskSplits {
            train, val, test, ..
        } = splits;

        // 2. The backbone, with a prompt for this task seeded from its description sentence.
        let bb = task_backbone(config, plugin, backbone_dir, run, device)?;

        // 3. The plugin's head, built through the vtable, with what it keeps of the training
        // split.
        let dim = bb.vit.cfg.embed_dim;
        let (seed, config_json) = (config.run.seed, task_config.clone());
        let head =
            TaskHead::build_for_training(plugin.clone(), config_json, dim, device, seed, &train)?;
        head.state.set_dropout_stream(world.rank as u64);
        let model = TaskModel::new(bb, head).with_precision(config.run.precision);
        let size = model.img_size();
        // How batches are drawn; random flips when the plugin mirrors its targets.
        let flip = RecordFlip::new(plugin, &task_config);
        let order = TrainOrder::from_settings(ft, task, &train, probe_flip(flip, &train, size)?)?
            .for_job(world, ft.accumulate.get())?;

        // 4. AdamW over backbone and head, layer-wise decay, the head at `head_lr_scale`.
        let train_records = train.clone();
        let train_loader = task_loader(train, size, Some(order), ft, seed);
        world.ensure_same_count("training samples", train_records.len())?;
        // Validation and the test read are shared out by position in these lists.
        for (what, split) in [("validation samples", &val), ("test samples", &test)] {
            world.ensure_same_list(what, split.iter().map(|r| r.image.as_str()))?;
        }
        // An optimiser step takes `finetune.accumulate` batches.
        let steps_per_epoch = train_loader
            .batches_per_epoch()?
            .div_ceil(config.finetune.accumulate.get());
        let (opt, schedule) = optimizer(config, &model, steps_per_epoch)?;
        // Every process starts from rank 0's weights, whatever it loaded or drew.
        let params = opt.groups.iter().flat_map(|g| g.params.iter().cloned());
        broadcast_parameters(world, &params.collect())?;
        Ok(Self {
            task_config,
            train_records,
            val,
            test,
            model,
            train_loader,
            opt,
            schedule,
        })
    }
}

/// AdamW over backbone and head (layer-wise LR decay, the head at `optim.head_lr_scale`) and its
/// warm-up + cosine learning rate over the run's steps.
fn optimizer(
    config: &Config,
    model: &TaskModel,
    steps_per_epoch: usize,
) -> Result<(AdamW, CosineSchedule)> {
    let (o, ft) = (&config.optim, &config.finetune);
    let opt = AdamW::new(
        backbone_and_head_groups(
            &model.backbone.store.vars(),
            &model.head.state.params.vars(),
            model.backbone.vit.cfg.depth,
            o.layer_decay,
            o.head_lr_scale,
        ),
        o.adamw(),
    )?;
    let schedule = CosineSchedule {
        base: o.lr,
        final_value: o.min_lr,
        total_steps: ft.epochs * steps_per_epoch,
        warmup_steps: ft.warmup_epochs * steps_per_epoch,
        warmup_start: 0.0,
    };
    Ok((opt, schedule))
}
