//! COCO person keypoints as top-down samples: one record per annotated person, the image cropped
//! to the person box grown to the model's aspect ratio and padded (×1.25, as MMPose and HRNet),
//! keypoints normalised to that crop.
//!
//! A target record's `values`: 17 × (u, v, visibility) in the crop, then the crop box
//! (x, y, w, h in image pixels), the annotation's box (x, y, w, h) and its area; `ints`:
//! image id, annotation id.

use std::path::Path;

use clasp_sdk::abi::crop_reference;
use clasp_sdk::{fail, Record, Result};
use serde::Deserialize;

use crate::coco_eval::Person;
use crate::keypoints::COUNT;

const KP: usize = 3 * COUNT;
const CROP: usize = KP;
const BOX: usize = KP + 4;
const AREA: usize = KP + 8;
/// Length of a target record's `values`.
pub const TARGET_LEN: usize = KP + 9;

#[derive(Debug, Deserialize)]
struct File {
    images: Vec<Image>,
    annotations: Vec<Person>,
}

#[derive(Debug, Deserialize)]
struct Image {
    id: i64,
    file_name: String,
}

/// The top-down crop of a person box: centre kept, grown to `aspect` (width / height), then
/// scaled by `padding`.
pub fn crop_box([x, y, w, h]: [f64; 4], aspect: f64, padding: f64) -> [f64; 4] {
    let (cx, cy) = (x + w / 2.0, y + h / 2.0);
    let (mut w, mut h) = (w.max(1.0), h.max(1.0));
    if w > aspect * h {
        h = w / aspect;
    } else {
        w = h * aspect;
    }
    let (w, h) = (w * padding, h * padding);
    [cx - w / 2.0, cy - h / 2.0, w, h]
}

/// The persons of `annotations` with at least one labelled keypoint, as records whose images
/// live in `images`.
pub fn read_split(
    annotations: &Path,
    images: &Path,
    aspect: f64,
    padding: f64,
) -> Result<Vec<Record>> {
    let text = std::fs::read_to_string(annotations)
        .map_err(|e| clasp_sdk::Error::data(format!("reading {}: {e}", annotations.display())))?;
    let file: File = serde_json::from_str(&text)
        .map_err(|e| clasp_sdk::Error::data(format!("{}: {e}", annotations.display())))?;
    let names: std::collections::HashMap<i64, &str> = file
        .images
        .iter()
        .map(|i| (i.id, i.file_name.as_str()))
        .collect();
    let mut out = Vec::new();
    for (i, a) in file.annotations.iter().enumerate() {
        if a.keypoints.len() != KP {
            fail!(
                "{}: annotations[{i}] (id {}) has {} keypoint values, expected {KP}",
                annotations.display(),
                a.id,
                a.keypoints.len()
            );
        }
        if a.iscrowd != 0 || a.num_keypoints == 0 {
            continue;
        }
        let Some(name) = names.get(&a.image_id) else {
            fail!(
                "{}: annotations[{i}] (id {}) names image {}, which `images` does not list",
                annotations.display(),
                a.id,
                a.image_id
            );
        };
        let crop = crop_box(a.bbox, aspect, padding);
        let [cx, cy, cw, ch] = crop;
        let mut values = Vec::with_capacity(TARGET_LEN);
        for k in a.keypoints.chunks(3) {
            if k[2] > 0.0 {
                values.extend([
                    ((k[0] - cx) / cw) as f32,
                    ((k[1] - cy) / ch) as f32,
                    k[2] as f32,
                ]);
            } else {
                values.extend([0.0, 0.0, 0.0]);
            }
        }
        values.extend(crop.map(|v| v as f32));
        values.extend(a.bbox.map(|v| v as f32));
        values.push(a.area as f32);
        let path = images.join(name).display().to_string();
        out.push(Record {
            image: crop_reference(&path, crop.map(|v| v as f32)).into(),
            values: values.into(),
            ints: vec![a.image_id, a.id].into(),
            ..Default::default()
        });
    }
    Ok(out)
}

/// What evaluation needs of a target record.
pub struct Target {
    pub image_id: i64,
    pub id: i64,
    /// Crop-normalised (u, v, visibility).
    pub keypoints: Vec<[f32; 3]>,
    pub crop: [f64; 4],
    pub bbox: [f64; 4],
    pub area: f64,
}

impl Target {
    pub fn parse(r: &Record) -> Result<Self> {
        if r.values.len() != TARGET_LEN || r.ints.len() < 2 {
            fail!(
                "{}: not a pose target ({} values, {} ints; expected {TARGET_LEN} and 2)",
                r.image,
                r.values.len(),
                r.ints.len()
            );
        }
        let v = &r.values;
        let four = |at: usize| [0, 1, 2, 3].map(|i| v[at + i] as f64);
        Ok(Self {
            image_id: r.ints[0],
            id: r.ints[1],
            keypoints: v[..KP].chunks(3).map(|k| [k[0], k[1], k[2]]).collect(),
            crop: four(CROP),
            bbox: four(BOX),
            area: v[AREA] as f64,
        })
    }

    /// Crop-normalised (u, v) in image pixels.
    pub fn to_image(&self, u: f32, v: f32) -> (f64, f64) {
        let [x, y, w, h] = self.crop;
        (x + u as f64 * w, y + v as f64 * h)
    }

    /// The annotation in COCO's image coordinates.
    pub fn person(&self) -> Person {
        let mut keypoints = Vec::with_capacity(KP);
        for &[u, v, vis] in &self.keypoints {
            if vis > 0.0 {
                let (x, y) = self.to_image(u, v);
                keypoints.extend([x, y, vis as f64]);
            } else {
                keypoints.extend([0.0, 0.0, 0.0]);
            }
        }
        Person {
            id: self.id,
            image_id: self.image_id,
            num_keypoints: self.keypoints.iter().filter(|k| k[2] > 0.0).count(),
            keypoints,
            area: self.area,
            bbox: self.bbox,
            iscrowd: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crop_keeps_the_centre_grows_to_the_aspect_and_pads() {
        let [x, y, w, h] = crop_box([10.0, 20.0, 40.0, 40.0], 0.5, 1.25);
        assert!((w / h - 0.5).abs() < 1e-12);
        assert!((x + w / 2.0 - 30.0).abs() < 1e-12 && (y + h / 2.0 - 40.0).abs() < 1e-12);
        assert!(
            (h - 100.0).abs() < 1e-12,
            "the tall side grows to fit the aspect"
        );
    }

    #[test]
    fn records_round_trip_to_coco_coordinates() {
        let dir = tempfile_dir();
        let mut first = vec![15.0, 30.0, 2.0];
        first.extend([0.0; 48]);
        let json = serde_json::json!({
            "images": [{"id": 7, "file_name": "a.jpg"}],
            "annotations": [
                {"id": 1, "image_id": 7, "num_keypoints": 1, "area": 800.0, "bbox": [10, 20, 20, 40],
                 "keypoints": first},
                {"id": 2, "image_id": 7, "num_keypoints": 0, "area": 10.0, "bbox": [0, 0, 2, 5],
                 "keypoints": vec![0.0; 51]}
            ]
        });
        let file = dir.join("kp.json");
        std::fs::write(&file, json.to_string()).unwrap();
        let recs = read_split(&file, &dir, 0.5, 1.25).unwrap();
        assert_eq!(recs.len(), 1, "persons without keypoints are not samples");
        assert!(
            recs[0].image.ends_with("a.jpg#crop=7.5,15,25,50"),
            "{}",
            recs[0].image
        );
        let t = Target::parse(&recs[0]).unwrap();
        let p = t.person();
        assert!((p.keypoints[0] - 15.0).abs() < 1e-5 && (p.keypoints[1] - 30.0).abs() < 1e-5);
        assert_eq!((p.id, p.image_id, p.num_keypoints), (1, 7, 1));
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("clasp-pose-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
