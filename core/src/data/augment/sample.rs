//! A training sample and the targets that follow its geometry.

use crate::data::synth::pose::FLIP_PAIRS;

/// An RGB image as f32 in [0, 255], row-major HWC.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

impl Image {
    pub fn from_rgb8(width: usize, height: usize, rgb: &[u8]) -> Self {
        Self {
            width,
            height,
            data: rgb.iter().map(|v| *v as f32).collect(),
        }
    }

    pub fn pixel(&self, x: usize, y: usize) -> [f32; 3] {
        let i = 3 * (y * self.width + x);
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    pub fn to_rgb8(&self) -> Vec<u8> {
        self.data
            .iter()
            .map(|v| v.round().clamp(0.0, 255.0) as u8)
            .collect()
    }
}

/// A map of class ids over the image (or over a coarser grid covering the same area, such as
/// the patch grid of pseudo-labels); `ignore` marks pixels with no label (outside the source after
/// a crop).
#[derive(Debug, Clone, PartialEq)]
pub struct LabelMap {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
    pub ignore: u8,
    /// Class ids that trade places under a horizontal flip (left/right parts).
    pub flip_swaps: Vec<(u8, u8)>,
}

impl LabelMap {
    /// The class a pixel of class `c` has after a horizontal flip.
    pub fn flipped_class(&self, c: u8) -> u8 {
        for &(a, b) in &self.flip_swaps {
            if c == a {
                return b;
            }
            if c == b {
                return a;
            }
        }
        c
    }
}

/// Everything one sample carries. Geometric augmentations transform all of it together.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub image: Image,
    pub labels: Option<LabelMap>,
    /// Patch-grid maps (pseudo-labels), same geometry at a coarser resolution.
    pub grids: Vec<LabelMap>,
    /// COCO keypoints `[x, y, v]` in image pixels (continuous coordinates: pixel i spans [i, i+1)).
    pub keypoints: Option<Vec<[f32; 3]>>,
}

impl Sample {
    pub fn image_only(image: Image) -> Self {
        Self {
            image,
            labels: None,
            grids: vec![],
            keypoints: None,
        }
    }
}

/// Keypoint index after a horizontal flip (COCO left/right pairs swap).
pub fn flipped_keypoint(i: usize) -> usize {
    for (a, b) in FLIP_PAIRS {
        if i == a {
            return b;
        }
        if i == b {
            return a;
        }
    }
    i
}
