//! A task's samples as loader items: the resized, normalised image and its record.

use anyhow::Result;
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

/// Batches of a task's samples at the model's input size. Training shuffles (and flips when the
/// task allows it); evaluation keeps the listed order.
pub fn task_loader(
    records: Vec<Record>,
    [height, width]: [usize; 2],
    train: Option<TrainOrder>,
    settings: &FinetuneSettings,
    seed: u64,
) -> Loader<TaskImages> {
    let (sampler, flip) = match train {
        Some(t) => (Sampler::Shuffle, t.flip),
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
#[derive(Debug, Clone, Copy)]
pub struct TrainOrder {
    /// Random horizontal flips (only for tasks whose targets do not change under a flip).
    pub flip: bool,
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
