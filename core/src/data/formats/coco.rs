//! COCO person keypoints JSON (`person_keypoints_*.json`).

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoImage {
    pub id: u64,
    pub file_name: String,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoAnnotation {
    pub id: u64,
    pub image_id: u64,
    pub category_id: u64,
    /// 17 × (x, y, v).
    pub keypoints: Vec<f32>,
    pub num_keypoints: u32,
    /// `[x, y, w, h]`.
    pub bbox: [f32; 4],
    pub area: f32,
    #[serde(default)]
    pub iscrowd: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoCategory {
    pub id: u64,
    pub name: String,
    pub supercategory: String,
    pub keypoints: Vec<String>,
    pub skeleton: Vec<[u32; 2]>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoKeypoints {
    pub images: Vec<CocoImage>,
    pub annotations: Vec<CocoAnnotation>,
    pub categories: Vec<CocoCategory>,
}

impl CocoKeypoints {
    /// Reads a COCO keypoints file; a malformed one is an error naming the file and JSON path.
    pub fn read(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let de = &mut serde_json::Deserializer::from_str(&text);
        let parsed: Self = serde_path_to_error::deserialize(de)
            .map_err(|e| anyhow::anyhow!("{}: at `{}`: {}", path.display(), e.path(), e.inner()))?;
        for (i, a) in parsed.annotations.iter().enumerate() {
            if a.keypoints.len() != 51 {
                anyhow::bail!(
                    "{}: at `annotations[{i}].keypoints`: {} values, expected 51 (17 × x, y, v)",
                    path.display(),
                    a.keypoints.len()
                );
            }
        }
        Ok(parsed)
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        std::fs::write(path, serde_json::to_string(self)?)
            .with_context(|| format!("writing {}", path.display()))
    }

    pub fn person_category() -> CocoCategory {
        use crate::data::synth::pose::{KEYPOINT_NAMES, SKELETON};
        CocoCategory {
            id: 1,
            name: "person".into(),
            supercategory: "person".into(),
            keypoints: KEYPOINT_NAMES.iter().map(|s| s.to_string()).collect(),
            skeleton: SKELETON.to_vec(),
        }
    }
}

/// The top-down crop of a person box, as MMPose and HRNet make it: the box centre, the box grown
/// to the model's aspect ratio (`width / height`), then scaled by `padding` (1.25 by default).
pub fn topdown_box(
    bbox: [f32; 4],
    aspect: f32,
    padding: f32,
) -> crate::data::augment::geometric::CropBox {
    let [x, y, w, h] = bbox;
    let (cx, cy) = (x + w / 2.0, y + h / 2.0);
    let (mut w, mut h) = (w.max(1.0), h.max(1.0));
    if w > aspect * h {
        h = w / aspect;
    } else {
        w = h * aspect;
    }
    let (w, h) = (w * padding, h * padding);
    crate::data::augment::geometric::CropBox {
        x: cx - w / 2.0,
        y: cy - h / 2.0,
        w,
        h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topdown_box_keeps_the_centre_and_the_aspect() {
        let b = topdown_box([10.0, 20.0, 40.0, 40.0], 0.5, 1.25);
        assert!((b.w / b.h - 0.5).abs() < 1e-6);
        assert!((b.x + b.w / 2.0 - 30.0).abs() < 1e-5 && (b.y + b.h / 2.0 - 40.0).abs() < 1e-5);
        assert!(
            (b.h - 80.0 * 1.25).abs() < 1e-4,
            "the tall side grows to fit the aspect"
        );
    }
}
