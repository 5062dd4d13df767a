//! Unlabeled images for pre-training: any folder tree of images, each loaded as DINO's views.

use std::path::{Path, PathBuf};

use anyhow::Result;
use rand_chacha::ChaCha8Rng;

use super::augment::{multi_crop, MultiCropConfig, Sample};
use super::images::{decode, list_images_recursive};
use super::loader::Dataset;

pub struct MultiCropFolder {
    pub files: Vec<PathBuf>,
    pub config: MultiCropConfig,
}

impl MultiCropFolder {
    pub fn new(root: &Path, config: MultiCropConfig) -> Result<Self> {
        Ok(Self {
            files: list_images_recursive(root)?,
            config,
        })
    }
}

impl Dataset for MultiCropFolder {
    /// Two global views then the local views.
    type Item = Vec<Sample>;

    fn len(&self) -> usize {
        self.files.len()
    }

    fn get(&self, index: usize, rng: &mut ChaCha8Rng) -> Result<Vec<Sample>> {
        let image = decode(&self.files[index])?;
        Ok(multi_crop(&Sample::image_only(image), &self.config, rng))
    }

    fn describe(&self, index: usize) -> String {
        self.files[index].display().to_string()
    }
}
