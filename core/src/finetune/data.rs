//! A task's samples as loader items: the resized, normalised image and its record.

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use clasp_sdk::abi::Record;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::config::schema::FinetuneSettings;
use crate::data::images::load_normalized;
use crate::data::loader::{Dataset, Loader, LoaderConfig, Skipped};
use crate::data::sampler::{Sampler, Shard};

pub struct TaskImages {
    pub records: Vec<Record>,
    pub height: usize,
    pub width: usize,
    /// Random horizontal flips (only for tasks whose targets do not change under a flip).
    pub flip: bool,
}

impl Dataset for TaskImages {
    type Item = (Vec<f32>, Record);

    fn len(&self) -> usize {
        self.records.len()
    }

    fn get(&self, index: usize, rng: &mut ChaCha8Rng) -> Result<(Vec<f32>, Record)> {
        let r = &self.records[index];
        let mut px = load_normalized(
            std::path::Path::new(r.image.as_str()),
            self.height,
            self.width,
        )?;
        if self.flip && rng.gen_bool(0.5) {
            let (h, w) = (self.height, self.width);
            for c in 0..3 {
                for y in 0..h {
                    px[c * h * w + y * w..c * h * w + (y + 1) * w].reverse();
                }
            }
        }
        Ok((px, r.clone()))
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
    let (sampler, flip) = match train {
        Some(t) => (t.sampler, t.flip),
        None => (Sampler::Sequential, false),
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
            shard: Shard::default(),
        },
    )
}

/// How training batches are drawn.
#[derive(Debug, Clone)]
pub struct TrainOrder {
    pub sampler: Sampler,
    /// Random horizontal flips (only for tasks whose targets do not change under a flip).
    pub flip: bool,
}

/// Tasks whose targets a horizontal flip leaves unchanged.
const FLIP_INVARIANT: [&str; 2] = ["attribute", "reid"];

impl TrainOrder {
    /// The order `finetune.sampler`, `finetune.instances_per_identity` and `finetune.flip` ask
    /// for, checked against the training records of `task`.
    pub fn from_settings(
        settings: &FinetuneSettings,
        task: &str,
        train: &[Record],
    ) -> Result<Self> {
        let flip = settings
            .flip
            .unwrap_or_else(|| FLIP_INVARIANT.contains(&task));
        let sampler = match settings.sampler.as_str() {
            "shuffle" => Sampler::Shuffle,
            "identity" => {
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
                        r.ints.first().copied().with_context(|| {
                            format!(
                                "config key `finetune.sampler` = \"identity\": sample {} has no \
                                 identity (no integer label)",
                                r.image
                            )
                        })
                    })
                    .collect::<Result<Vec<i64>>>()?;
                Sampler::IdentityBalanced { p: b / k, k, pids }
            }
            other => bail!(
                "config key `finetune.sampler` = {other:?}: expected \"shuffle\" or \"identity\""
            ),
        };
        Ok(Self { sampler, flip })
    }
}

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
pub fn report_skipped(what: &str, skipped: &[Skipped]) {
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
                ints: vec![*p].into(),
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn the_identity_sampler_is_checked_and_flips_follow_the_task() {
        let mut s = FinetuneSettings {
            batch_size: 8,
            sampler: "identity".into(),
            ..Default::default()
        };
        let o = TrainOrder::from_settings(&s, "reid", &records(&[0, 0, 1, 1, 2])).unwrap();
        assert!(o.flip);
        assert_eq!(
            o.sampler,
            Sampler::IdentityBalanced {
                p: 2,
                k: 4,
                pids: vec![0, 0, 1, 1, 2]
            }
        );
        assert!(
            !TrainOrder::from_settings(&s, "pose", &records(&[0, 1]))
                .unwrap()
                .flip
        );
        s.flip = Some(true);
        assert!(
            TrainOrder::from_settings(&s, "pose", &records(&[0, 1]))
                .unwrap()
                .flip
        );

        s.instances_per_identity = 3;
        let e = TrainOrder::from_settings(&s, "reid", &records(&[0, 1])).unwrap_err();
        assert!(
            e.to_string().contains("finetune.instances_per_identity"),
            "{e}"
        );
        s.instances_per_identity = 4;
        let mut unlabelled = records(&[0, 1]);
        unlabelled[1].ints = Vec::new().into();
        let e = TrainOrder::from_settings(&s, "reid", &unlabelled).unwrap_err();
        assert!(e.to_string().contains("1.jpg"), "{e}");
        s.sampler = "balanced".into();
        let e = TrainOrder::from_settings(&s, "reid", &unlabelled).unwrap_err();
        assert!(e.to_string().contains("finetune.sampler"), "{e}");
    }
}
