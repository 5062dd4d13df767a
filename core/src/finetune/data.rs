//! A task's samples as loader items: the resized, normalised image and its record.

use anyhow::Result;
use clasp_sdk::abi::Record;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::data::images::load_normalized;
use crate::data::loader::Dataset;

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
