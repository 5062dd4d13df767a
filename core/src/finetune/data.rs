//! A task's samples as loader items: the resized, normalised image and its record.

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use clasp_sdk::abi::{Record, Split};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::config::schema::{BatchOrder, FinetuneSettings};
use crate::data::loader::{Dataset, Loader, LoaderConfig, Shard, Skipped};
use crate::data::sampler::Sampler;
use crate::distributed::World;
use crate::finetune::sample::{load_sample, mirror_pixels};
use crate::plugin_host::task_head::{dataset, RecordFlip};
use crate::plugin_host::Plugin;

pub struct TaskImages {
    pub records: Vec<Record>,
    pub height: usize,
    pub width: usize,
    /// Random horizontal flips, with the task's targets mirrored by its plugin.
    pub flip: Option<RecordFlip>,
}

impl Dataset for TaskImages {
    type Item = (Vec<f32>, Record);

    fn len(&self) -> usize {
        self.records.len()
    }

    fn get(&self, index: usize, rng: &mut ChaCha8Rng) -> Result<(Vec<f32>, Record)> {
        let size = [self.height, self.width];
        let (mut px, record) = load_sample(&self.records[index], size)?;
        match &self.flip {
            Some(flip) if rng.gen_bool(0.5) => {
                let mirrored = flip.apply(&record, size)?.with_context(|| {
                    format!(
                        "plugin `{}` no longer accepts mirrored images",
                        flip.plugin.name()
                    )
                })?;
                mirror_pixels(&mut px, size);
                Ok((px, mirrored))
            }
            _ => Ok((px, record)),
        }
    }

    fn describe(&self, index: usize) -> String {
        self.records[index].image.to_string()
    }
}

/// Batches of a task's samples at the model's input size. Training draws them as `train` says;
/// evaluation keeps the listed order.
pub fn task_loader(
    records: Vec<Record>,
    [height, width]: [usize; 2],
    train: Option<TrainOrder>,
    settings: &FinetuneSettings,
    seed: u64,
) -> Loader<TaskImages> {
    let (sampler, flip, shard) = match train {
        Some(t) => (t.sampler, t.flip, t.shard),
        None => (Sampler::Sequential, None, Shard::default()),
    };
    Loader::new(
        TaskImages {
            records,
            height,
            width,
            flip,
        },
        LoaderConfig {
            batch_size: settings.batch_size.max(1),
            workers: settings.workers.max(1),
            prefetch: 4,
            seed,
            drop_last: false,
            sampler,
            shard,
        },
    )
}

/// How training batches are drawn.
#[derive(Debug, Clone)]
pub struct TrainOrder {
    pub sampler: Sampler,
    /// Random horizontal flips, with the targets mirrored by the task's plugin.
    pub flip: Option<RecordFlip>,
    /// This process's part of each batch of the job.
    pub shard: Shard,
}

/// The plugin's `flip` when the task mirrors its targets: asked of the first training sample
/// that loads at `size` (an unreadable one is skipped here as the loader skips it).
pub fn probe_flip(
    flip: RecordFlip,
    train: &[Record],
    size: [usize; 2],
) -> Result<Option<RecordFlip>> {
    let mut unreadable = None;
    for record in train {
        match load_sample(record, size) {
            Ok((_, loaded)) => return Ok(flip.apply(&loaded, size)?.is_some().then_some(flip)),
            Err(e) => {
                tracing::warn!("skipping {}: {e:#}", record.image);
                unreadable = Some(e);
            }
        }
    }
    match unreadable {
        Some(e) => Err(e.context("no training sample could be read")),
        None => Ok(None),
    }
}

impl TrainOrder {
    /// The order `finetune.sampler`, `finetune.instances_per_identity` and `finetune.flip` ask
    /// for, checked against the training records of `task`. Flips are on by default when the
    /// plugin mirrors its targets (`mirror`, from [`probe_flip`]).
    pub fn from_settings(
        settings: &FinetuneSettings,
        task: &str,
        train: &[Record],
        mirror: Option<RecordFlip>,
    ) -> Result<Self> {
        let flip = match settings.flip {
            Some(true) if mirror.is_none() => bail!(
                "config key `finetune.flip` = true: plugin `{task}` does not mirror its targets, \
                 so it cannot be trained on flipped images"
            ),
            Some(false) => None,
            _ => mirror,
        };
        let sampler = match settings.sampler {
            BatchOrder::Shuffle => Sampler::Shuffle,
            BatchOrder::Identity => {
                let (k, b) = (settings.instances_per_identity, settings.batch_size);
                if k == 0 || b % k != 0 || b / k < 2 {
                    bail!(
                        "config key `finetune.instances_per_identity` = {k}: the identity sampler \
                         needs K ≥ 1 dividing `finetune.batch_size` = {b} into P ≥ 2 identities"
                    );
                }
                let pids = train
                    .iter()
                    .map(|r| {
                        r.identity.into_option().with_context(|| {
                            format!(
                                "config key `finetune.sampler` = \"identity\": sample {} has no \
                                 identity",
                                r.image
                            )
                        })
                    })
                    .collect::<Result<Vec<i64>>>()?;
                Sampler::IdentityBalanced { p: b / k, k, pids }
            }
        };
        Ok(Self {
            sampler,
            flip,
            shard: Shard::default(),
        })
    }

    /// The order of a job whose optimiser step takes `accumulate` batches on each of `world`'s
    /// processes: this process's shard, and P × K batches dealt per step (P identities per batch
    /// on each process and micro-batch, none repeated within a step), so the step sees the
    /// identities one process sees with the whole step's batch.
    pub fn for_job(mut self, world: &World, accumulate: usize) -> Result<Self> {
        if let Sampler::IdentityBalanced { p, pids, .. } = &mut self.sampler {
            let per_batch = *p;
            *p *= world.size * accumulate;
            let identities = pids.iter().collect::<std::collections::BTreeSet<_>>().len();
            if identities < *p {
                bail!(
                    "the identity sampler deals P = {per_batch} identities per batch × {} \
                     process(es) × `finetune.accumulate` = {accumulate} distinct identities per \
                     step, {} in all, but the training split has {identities}",
                    world.size,
                    *p
                );
            }
        }
        self.shard = world.shard();
        Ok(self)
    }
}

/// A task's train, validation and test samples, as its plugin reads them from `finetune.data`.
pub struct TaskSplits {
    pub root: std::path::PathBuf,
    pub train: Vec<Record>,
    pub val: Vec<Record>,
    pub test: Vec<Record>,
}

impl TaskSplits {
    /// Says when there is no validation split: no epoch can be chosen, the last is delivered.
    pub fn warn_without_validation(&self, task: &str) {
        if self.val.is_empty() {
            tracing::warn!(
                "{}: no validation split (see `clasp plugins inspect {task}` for where it is \
                 read): no epoch is selected, the last one is delivered",
                self.root.display()
            );
        }
    }

    /// Reads the three splits and checks what fine-tuning and probes both rely on: a dataset
    /// root, non-empty train and test splits, and a validation split apart from the test split.
    pub fn load(
        plugin: &Plugin,
        task_config: &str,
        data: Option<&std::path::Path>,
    ) -> Result<Self> {
        let Some(data) = data else {
            bail!("config key `finetune.data` is not set: point it at the task's dataset root");
        };
        let root = data.to_path_buf();
        let split = |split| dataset(plugin, task_config, &root, split);
        let (train, val, test) = (
            split(Split::Train)?,
            split(Split::Val)?,
            split(Split::Test)?,
        );
        if train.is_empty() || test.is_empty() {
            bail!(
                "{}: the train ({}) or test ({}) split is empty",
                root.display(),
                train.len(),
                test.len()
            );
        }
        ensure_val_apart_from_test(plugin.name(), &val, &test)?;
        Ok(Self {
            root,
            train,
            val,
            test,
        })
    }
}

/// Fails when the validation split shares a sample with the test split: epochs and recipes are
/// chosen on validation, so that would choose them on the test split (e.g. LIP read with
/// `test_split = "val"` and the default `val_split = "val"`).
pub fn ensure_val_apart_from_test(plugin: &str, val: &[Record], test: &[Record]) -> Result<()> {
    let test_images: std::collections::HashSet<&str> =
        test.iter().map(|r| r.image.as_str()).collect();
    if let Some(shared) = val.iter().find(|r| test_images.contains(r.image.as_str())) {
        bail!(
            "plugin `{plugin}`: the validation split holds {}, which the test split holds too: \
             epochs would be chosen on the test split. Point the task's validation setting \
             (`clasp plugins inspect {plugin}`) at other samples, or at none",
            shared.image
        );
    }
    Ok(())
}

/// At most `n` of `records`, evenly spaced (all of them when there are fewer).
pub fn evenly_spaced(records: &[Record], n: usize) -> Vec<Record> {
    if records.len() <= n {
        return records.to_vec();
    }
    (0..n)
        .map(|i| records[i * records.len() / n].clone())
        .collect()
}

/// Training targets the image-blind levels are built from: plenty for a per-pixel prior or a
/// median pose, and bounded in memory (label maps are loaded at the input size).
pub const BLIND_TRAIN_SAMPLES: usize = 2000;

/// The loaded pixels of a batch as one `[B, 3, H, W]` tensor.
pub fn batch_tensor(
    items: &[(Vec<f32>, Record)],
    [h, w]: [usize; 2],
    device: &Device,
) -> Result<Tensor> {
    let mut px = Vec::with_capacity(items.len() * 3 * h * w);
    for (p, _) in items {
        px.extend_from_slice(p);
    }
    Ok(Tensor::from_vec(px, (items.len(), 3, h, w), device)?)
}

/// Warns, by name, about the samples an epoch could not load (they were skipped, not fatal).
/// Warns about the samples of a pass that could not be read (`read` were), and stops the job
/// when they exceed `max_fraction` of the pass (`data.max_skipped_fraction`).
pub fn check_skipped(
    what: &str,
    skipped: &[Skipped],
    read: usize,
    max_fraction: f64,
) -> Result<()> {
    report_skipped(what, skipped);
    let total = read + skipped.len();
    if skipped.len() as f64 > max_fraction * total as f64 {
        bail!(
            "{what}: {} of {total} samples could not be read, more than `data.max_skipped_fraction` \
             = {max_fraction} of them; the first: {} ({})",
            skipped.len(),
            skipped[0].name,
            skipped[0].error
        );
    }
    Ok(())
}

/// [`check_skipped`] over every process of `world`: each names its own unreadable samples, and
/// the limit applies to the counts summed over all of them, so every process decides alike.
pub fn check_skipped_in(
    world: &World,
    what: &str,
    skipped: &[Skipped],
    read: usize,
    max_fraction: f64,
) -> Result<()> {
    if world.size == 1 {
        return check_skipped(what, skipped, read, max_fraction);
    }
    report_skipped(what, skipped);
    let mut counts = [skipped.len() as f64, read as f64];
    world.sum_f64(&mut counts)?;
    let (bad, total) = (counts[0], counts[0] + counts[1]);
    if bad > max_fraction * total {
        bail!(
            "{what}: {bad} of {total} samples over the {} processes could not be read, more than \
             `data.max_skipped_fraction` = {max_fraction} of them{}",
            world.size,
            skipped.first().map_or(String::new(), |s| format!(
                "; the first here: {} ({})",
                s.name, s.error
            ))
        );
    }
    Ok(())
}

fn report_skipped(what: &str, skipped: &[Skipped]) {
    if skipped.is_empty() {
        return;
    }
    let names: Vec<String> = skipped
        .iter()
        .take(5)
        .map(|s| format!("{} ({})", s.name, s.error))
        .collect();
    tracing::warn!(
        "{what}: skipped {} unreadable samples: {}{}",
        skipped.len(),
        names.join("; "),
        if skipped.len() > 5 { "; …" } else { "" }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(pids: &[i64]) -> Vec<Record> {
        pids.iter()
            .map(|p| Record {
                image: format!("{p}.jpg").into(),
                identity: Some(*p).into(),
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn the_identity_sampler_is_checked_and_flips_need_a_mirroring_plugin() {
        let mut s = FinetuneSettings {
            batch_size: 8,
            sampler: BatchOrder::Identity,
            ..Default::default()
        };
        let o = TrainOrder::from_settings(&s, "reid", &records(&[0, 0, 1, 1, 2]), None).unwrap();
        assert!(o.flip.is_none());
        assert_eq!(
            o.sampler,
            Sampler::IdentityBalanced {
                p: 2,
                k: 4,
                pids: vec![0, 0, 1, 1, 2]
            }
        );
        s.flip = Some(true);
        let e = TrainOrder::from_settings(&s, "pose", &records(&[0, 1]), None).unwrap_err();
        assert!(
            e.to_string().contains("finetune.flip") && e.to_string().contains("pose"),
            "{e}"
        );
        s.flip = None;

        s.instances_per_identity = 3;
        let e = TrainOrder::from_settings(&s, "reid", &records(&[0, 1]), None).unwrap_err();
        assert!(
            e.to_string().contains("finetune.instances_per_identity"),
            "{e}"
        );
        s.instances_per_identity = 4;
        let mut unlabelled = records(&[0, 1]);
        unlabelled[1].identity = None.into();
        let e = TrainOrder::from_settings(&s, "reid", &unlabelled, None).unwrap_err();
        assert!(e.to_string().contains("1.jpg"), "{e}");
    }

    /// A step of `accumulate` batches deals P × accumulate distinct identities (here in one
    /// process: the world's size multiplies alike), each batch K images of P of them; too few
    /// identities for a step are refused by the settings that ask for them.
    #[test]
    fn a_step_of_accumulated_batches_deals_distinct_identities() {
        let s = FinetuneSettings {
            batch_size: 4,
            instances_per_identity: 2,
            sampler: BatchOrder::Identity,
            ..Default::default()
        };
        let pids: Vec<i64> = (0..24).map(|i| i / 4).collect(); // 6 identities × 4 images
        let world = World::single();
        let order = TrainOrder::from_settings(&s, "reid", &records(&pids), None)
            .unwrap()
            .for_job(&world, 3)
            .unwrap();
        let Sampler::IdentityBalanced { p, .. } = &order.sampler else {
            panic!("identity sampler expected");
        };
        assert_eq!(*p, 6, "2 identities per batch × 3 batches");
        let visit = order.sampler.order(pids.len(), 0, 0).unwrap();
        for step in visit.chunks(12) {
            let ids: std::collections::BTreeSet<i64> = step.iter().map(|i| pids[*i]).collect();
            assert_eq!(ids.len(), 6, "a step repeats an identity: {step:?}");
            for batch in step.chunks(4) {
                assert_eq!(pids[batch[0]], pids[batch[1]]);
                assert_eq!(pids[batch[2]], pids[batch[3]]);
            }
        }
        let e = TrainOrder::from_settings(&s, "reid", &records(&pids), None)
            .unwrap()
            .for_job(&world, 4)
            .unwrap_err();
        assert!(e.to_string().contains("`finetune.accumulate` = 4"), "{e}");
    }
}
