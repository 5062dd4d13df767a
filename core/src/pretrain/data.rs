//! Pre-training data: unlabeled person crops, each with its pseudo-labels from the cache when it
//! has them, cut into DINO's views. The part map is carried at pixel resolution through every crop
//! and flip, then read at each view's patch centres, so labels follow each view's geometry.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use rand_chacha::ChaCha8Rng;

use super::pseudo_losses::IGNORE;
use crate::data::augment::geometric::{resample_labels, CropBox};
use crate::data::augment::{multi_crop, LabelMap, MultiCropConfig, Sample};
use crate::data::images::{decode, list_images_recursive, normalize_chw, MEAN, STD};
use crate::data::loader::Dataset;
use crate::teacher::label_cache::read_cache;

/// One image's pseudo-labels, as the cache holds them.
#[derive(Debug, Clone)]
pub struct ImageLabels {
    /// Part class per teacher patch, `[gh · gw]`, low-confidence patches already [`IGNORE`].
    pub parts: Vec<u8>,
    pub grid: (usize, usize),
    /// Attribute probabilities and whether each is confident enough to train on.
    pub attributes: Vec<f32>,
    pub attribute_mask: Vec<f32>,
}

/// The cache read back and keyed by image path relative to the images root.
pub struct PseudoLabels {
    pub by_path: HashMap<String, ImageLabels>,
    pub part_names: Vec<String>,
    pub attribute_names: Vec<String>,
    /// Mean probability per attribute over the cache (the BCE weights).
    pub positive_ratio: Vec<f32>,
}

impl PseudoLabels {
    pub fn read(cache: &Path, min_confidence: f32, margin: f32) -> Result<Self> {
        let c = read_cache(cache)?;
        let v = &c.index.vocabulary;
        let n = c.index.images.len();
        let a = v.attribute_names.len();
        let cells = c.parts.len().checked_div(n).unwrap_or(0);
        let (gh, gw) = (v.grid[0], v.grid[1]);
        if gh * gw != cells {
            bail!(
                "{}: part maps of {cells} cells do not match the grid {gh}×{gw} in index.json",
                cache.display()
            );
        }
        let mut by_path = HashMap::new();
        for (i, img) in c.index.images.iter().enumerate() {
            if !c.valid[i] {
                continue;
            }
            let parts = (0..cells)
                .map(|j| {
                    let k = i * cells + j;
                    if c.confidence[k] < min_confidence {
                        IGNORE
                    } else {
                        c.parts[k]
                    }
                })
                .collect();
            let attributes = c.attributes[i * a..(i + 1) * a].to_vec();
            let attribute_mask = attributes
                .iter()
                .map(|p| f32::from((p - 0.5).abs() >= margin))
                .collect();
            by_path.insert(
                img.path.clone(),
                ImageLabels {
                    parts,
                    grid: (gh, gw),
                    attributes,
                    attribute_mask,
                },
            );
        }
        let positive_ratio = super::pseudo_losses::positive_ratio(&c.attributes, &c.valid, a);
        Ok(Self {
            by_path,
            part_names: v.part_names.clone(),
            attribute_names: v.attribute_names.clone(),
            positive_ratio,
        })
    }
}

/// One training image: its views (global ones first; `grids[0]` the part map when labelled) and
/// its attribute targets.
pub struct PretrainItem {
    pub views: Vec<Sample>,
    pub attributes: Option<(Vec<f32>, Vec<f32>)>,
}

pub struct PretrainImages {
    pub root: PathBuf,
    pub files: Vec<PathBuf>,
    pub crops: MultiCropConfig,
    labels: Option<PseudoLabels>,
}

impl PretrainImages {
    pub fn new(root: &Path, crops: MultiCropConfig, labels: Option<PseudoLabels>) -> Result<Self> {
        let files = list_images_recursive(root)?;
        if files.is_empty() {
            bail!(
                "no images under {} (config key `pretrain.data`)",
                root.display()
            );
        }
        let out = Self {
            root: root.to_path_buf(),
            files,
            crops,
            labels,
        };
        if let Some(l) = &out.labels {
            let labelled = (0..out.files.len())
                .filter(|i| l.by_path.contains_key(&out.relative(*i)))
                .count();
            if labelled == 0 {
                bail!(
                    "none of the {} images under {} is in the pseudo-label cache (config key \
                     `pretrain.labels`): label this folder with `clasp label --images {}`",
                    out.files.len(),
                    root.display(),
                    root.display()
                );
            }
            if labelled < out.files.len() {
                tracing::warn!(
                    "{} of {} images have no pseudo-labels (not in the cache, or unreadable when \
                     labelled): they train DINO only",
                    out.files.len() - labelled,
                    out.files.len()
                );
            }
        }
        Ok(out)
    }

    pub fn labels(&self) -> Option<&PseudoLabels> {
        self.labels.as_ref()
    }

    fn relative(&self, index: usize) -> String {
        self.files[index]
            .strip_prefix(&self.root)
            .unwrap_or(&self.files[index])
            .to_string_lossy()
            .replace('\\', "/")
    }
}

/// The teacher's patch grid blown up to the image's pixels (nearest), so crops and flips can move
/// it with the image.
fn pixel_part_map(l: &ImageLabels, width: usize, height: usize) -> LabelMap {
    let (gh, gw) = l.grid;
    let mut data = vec![IGNORE; width * height];
    for y in 0..height {
        let gy = y * gh / height;
        for x in 0..width {
            data[y * width + x] = l.parts[gy * gw + x * gw / width];
        }
    }
    LabelMap {
        width,
        height,
        data,
        ignore: IGNORE,
        flip_swaps: vec![],
    }
}

impl Dataset for PretrainImages {
    type Item = PretrainItem;

    fn len(&self) -> usize {
        self.files.len()
    }

    fn get(&self, index: usize, rng: &mut ChaCha8Rng) -> Result<PretrainItem> {
        let image = decode(&self.files[index])?;
        let labels = self
            .labels
            .as_ref()
            .and_then(|l| l.by_path.get(&self.relative(index)));
        let mut sample = Sample::image_only(image);
        if let Some(l) = labels {
            sample.grids = vec![pixel_part_map(l, sample.image.width, sample.image.height)];
        }
        Ok(PretrainItem {
            views: multi_crop(&sample, &self.crops, rng),
            attributes: labels.map(|l| (l.attributes.clone(), l.attribute_mask.clone())),
        })
    }

    fn describe(&self, index: usize) -> String {
        self.files[index].display().to_string()
    }
}

/// View `v` of every item as a normalised `[B, 3, H, W]` tensor.
pub fn view_tensor(items: &[PretrainItem], v: usize, device: &Device) -> Result<Tensor> {
    let first = &items[0].views[v].image;
    let (h, w) = (first.height, first.width);
    let mut px = Vec::with_capacity(items.len() * 3 * h * w);
    for it in items {
        px.extend(normalize_chw(&it.views[v].image, MEAN, STD));
    }
    Ok(Tensor::from_vec(px, (items.len(), 3, h, w), device)?)
}

/// Part labels of view `v` at its patch centres, `[B · gh · gw]` (row-major), [`IGNORE`] for
/// unlabelled images and patches.
pub fn view_part_labels(items: &[PretrainItem], v: usize, patch: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for it in items {
        let view = &it.views[v];
        let (w, h) = (view.image.width, view.image.height);
        let (gw, gh) = (w / patch, h / patch);
        match view.grids.first() {
            Some(map) => {
                let whole = CropBox {
                    x: 0.0,
                    y: 0.0,
                    w: w as f32,
                    h: h as f32,
                };
                out.extend(resample_labels(map, w, h, whole, gw, gh).data);
            }
            None => out.extend(std::iter::repeat_n(IGNORE, gw * gh)),
        }
    }
    out
}

/// Attribute targets and mask `[B, A]`; unlabelled images are fully masked.
pub fn attribute_targets(
    items: &[PretrainItem],
    num_attrs: usize,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let (mut t, mut m) = (Vec::new(), Vec::new());
    for it in items {
        match &it.attributes {
            Some((p, mask)) => {
                t.extend_from_slice(p);
                m.extend_from_slice(mask);
            }
            None => {
                t.extend(std::iter::repeat_n(0.5, num_attrs));
                m.extend(std::iter::repeat_n(0.0, num_attrs));
            }
        }
    }
    let shape = (items.len(), num_attrs);
    Ok((
        Tensor::from_vec(t, shape, device).context("attribute targets")?,
        Tensor::from_vec(m, shape, device)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::augment::geometric::{crop_resize, hflip};
    use crate::data::augment::Image;

    #[test]
    fn part_labels_are_read_at_patch_centres_and_follow_a_crop() {
        // A 4×2 teacher grid over a 64×32 image: left column class 1, right column class 2,
        // bottom row ignored.
        let l = ImageLabels {
            parts: vec![1, 2, 1, 2, 1, 2, IGNORE, IGNORE],
            grid: (4, 2),
            attributes: vec![],
            attribute_mask: vec![],
        };
        let map = pixel_part_map(&l, 32, 64);
        assert_eq!(map.data[0], 1);
        assert_eq!(map.data[31], 2);
        assert_eq!(map.data[63 * 32], IGNORE);
        let mut s = Sample::image_only(Image::from_rgb8(32, 64, &vec![0u8; 32 * 64 * 3]));
        s.grids = vec![map];
        // The right half, stretched back to 32×64: class 2 everywhere but the bottom row.
        let right = CropBox {
            x: 16.0,
            y: 0.0,
            w: 16.0,
            h: 64.0,
        };
        let cropped = crop_resize(&s, right, 32, 64);
        let item = PretrainItem {
            views: vec![s, cropped],
            attributes: None,
        };
        // 16-pixel patches: a 4×2 grid per view.
        assert_eq!(
            view_part_labels(std::slice::from_ref(&item), 0, 16),
            vec![1, 2, 1, 2, 1, 2, IGNORE, IGNORE]
        );
        assert_eq!(
            view_part_labels(&[item], 1, 16),
            vec![2, 2, 2, 2, 2, 2, IGNORE, IGNORE]
        );
    }

    #[test]
    fn flipped_views_swap_the_columns() {
        let l = ImageLabels {
            parts: vec![1, 2, 1, 2],
            grid: (2, 2),
            attributes: vec![],
            attribute_mask: vec![],
        };
        let mut s = Sample::image_only(Image::from_rgb8(32, 32, &vec![0u8; 32 * 32 * 3]));
        s.grids = vec![pixel_part_map(&l, 32, 32)];
        let item = PretrainItem {
            views: vec![hflip(&s)],
            attributes: None,
        };
        assert_eq!(view_part_labels(&[item], 0, 16), vec![2, 1, 2, 1]);
    }
}
