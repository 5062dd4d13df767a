//! Everything pre-training works on, built from the config: the images with their pseudo-labels
//! and the loader, the student with its heads, the EMA teacher, and which prompt each loss uses.
//! Training and the gradient-conflict analysis build it the same way.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, Var};

use super::data::{PretrainImages, PseudoLabels};
use super::model::{task_for, EmaTeacher, Heads, ATTR_TASK, PART_TASK, SSL_TASK};
use crate::backbone::Backbone;
use crate::checkpoint::backbone::load_into_except;
use crate::checkpoint::manifest::Manifest;
use crate::config::Config;
use crate::data::loader::{Loader, LoaderConfig};
use crate::data::sampler::Sampler;
use crate::distributed::gradients::broadcast_parameters;
use crate::distributed::World;
use crate::model::ParamStore;

/// The prompt of each loss (`None`: the backbone has no prompts); `part`/`attr` are `None` when
/// there are no pseudo-labels.
#[derive(Debug, Clone, Copy)]
pub struct LossTasks {
    pub ssl: Option<&'static str>,
    pub part: Option<Option<&'static str>>,
    pub attr: Option<Option<&'static str>>,
}

pub struct Setup {
    pub loader: Loader<PretrainImages>,
    pub n_images: usize,
    pub steps_per_epoch: usize,
    pub student: Backbone,
    pub heads: Heads,
    pub teacher: EmaTeacher,
    pub tasks: LossTasks,
    /// Mean probability per attribute (the BCE weights), when labelled.
    pub positive_ratio: Option<Tensor>,
}

impl Setup {
    pub fn new(
        config: &Config,
        device: &Device,
        config_hash: String,
        world: &World,
    ) -> Result<Self> {
        let p = &config.pretrain;
        let Some(data) = &p.data else {
            bail!("config key `pretrain.data` is not set: point it at a folder of person crops");
        };
        let labels = p
            .labels
            .as_deref()
            .map(|l| {
                PseudoLabels::read(l, p.part_min_confidence, p.attr_margin).with_context(|| {
                    format!(
                        "reading the pseudo-labels (config key `pretrain.labels` = {})",
                        l.display()
                    )
                })
            })
            .transpose()?;
        let parts = labels.as_ref().map(|l| l.part_names.len());
        let attrs = labels.as_ref().map(|l| l.attribute_names.len());
        let positive_ratio = labels
            .as_ref()
            .map(|l| Tensor::new(l.positive_ratio.as_slice(), device))
            .transpose()?;
        let images = PretrainImages::new(data, p.crops.clone(), labels)?;
        let n_images = images.files.len();
        let loader = Loader::new(
            images,
            LoaderConfig {
                batch_size: p.batch_size,
                workers: p.workers.max(1),
                prefetch: 2,
                seed: config.run.seed,
                drop_last: true,
                sampler: Sampler::Shuffle,
                shard: world.shard(),
            },
        );
        world.ensure_same_count("pre-training images", n_images)?;
        // A step takes `accumulate` batches on every process.
        let steps_per_epoch = loader.batches_per_epoch()? / p.accumulate.get();
        if steps_per_epoch == 0 {
            bail!(
                "{n_images} images make no full step of `pretrain.batch_size` = {} × \
                 `pretrain.accumulate` = {} × {} process(es)",
                p.batch_size,
                p.accumulate,
                world.size
            );
        }

        let student = Backbone::fresh(config, device, config_hash)?;
        if let Some(init) = &p.init {
            let context = || format!("starting from `pretrain.init` = {}", init.display());
            // Weights of the right shapes can still be computed otherwise (activation, norms).
            let made_for = Manifest::read(init).with_context(context)?.model;
            let differences = student.vit.cfg.computation_differences(&made_for);
            if !differences.is_empty() {
                bail!(
                    "{}: this run's model computes otherwise than the checkpoint's (this run vs \
                     the checkpoint): {}",
                    context(),
                    differences.join("; ")
                );
            }
            load_into_except(init, &student.store, |name| name.starts_with("prompts."))
                .with_context(context)?;
        }
        let heads = Heads::new(
            ParamStore::new(device, config.run.seed ^ 0x5eed),
            student.vit.cfg.embed_dim,
            &p.dino,
            parts,
            attrs,
        )?;
        // Every process starts from rank 0's student and heads (and so its teacher).
        let mut params: BTreeMap<String, Var> = student.store.vars().into_iter().collect();
        params.extend(heads.store.vars());
        broadcast_parameters(world, &params)?;
        let teacher = EmaTeacher::copy_of(&student, &heads, &p.dino)?;
        let tasks = LossTasks {
            ssl: task_for(&student, SSL_TASK)?,
            part: heads
                .part
                .as_ref()
                .map(|_| task_for(&student, PART_TASK))
                .transpose()?,
            attr: heads
                .attr
                .as_ref()
                .map(|_| task_for(&student, ATTR_TASK))
                .transpose()?,
        };
        Ok(Self {
            loader,
            n_images,
            steps_per_epoch,
            student,
            heads,
            teacher,
            tasks,
            positive_ratio,
        })
    }
}
