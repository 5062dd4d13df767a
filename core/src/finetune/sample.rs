//! One task sample as the model sees it: the image (or the person box the record names) at the
//! input size, normalised, and the record with its label map loaded at that size.

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use clasp_sdk::abi::{split_crop, Record};

use crate::data::augment::geometric::{resample_image, resample_labels, CropBox};
use crate::data::augment::sample::LabelMap;
use crate::data::formats::lip::read_labels;
use crate::data::images::{decode, load_normalized, normalize_chw, MEAN, STD};

/// Class id of label pixels that carry no target (outside the image, unlabelled).
pub const IGNORE_LABEL: u8 = 255;

/// Loads `record` for a model input of `h`×`w`: CHW pixels and the record whose `values` are
/// the label map (when it names one) resampled the same way as the image, of `shape` `[h, w]`.
pub fn load_sample(record: &Record, [h, w]: [usize; 2]) -> Result<(Vec<f32>, Record)> {
    let (path, crop) = split_crop(record.image.as_str()).map_err(|e| anyhow!(e))?;
    let path = Path::new(path);
    let mut out = record.clone();
    let (pixels, image_size) = match crop {
        None => {
            if record.label_map.is_none() {
                return Ok((load_normalized(path, h, w)?, out));
            }
            let img = decode(path)?;
            let size = (img.width, img.height);
            let full = CropBox {
                x: 0.0,
                y: 0.0,
                w: img.width as f32,
                h: img.height as f32,
            };
            (
                normalize_chw(&resample_image(&img, full, w, h), MEAN, STD),
                size,
            )
        }
        Some([x, y, bw, bh]) => {
            let img = decode(path)?;
            let size = (img.width, img.height);
            let b = CropBox { x, y, w: bw, h: bh };
            (
                normalize_chw(&resample_image(&img, b, w, h), MEAN, STD),
                size,
            )
        }
    };
    if let Some(map) = record.label_map.as_ref().into_option() {
        let (mw, mh, data) = read_labels(Path::new(map.as_str()))?;
        let (iw, ih) = image_size;
        // A label map may be a scaled copy of its image (half resolution, say), never another
        // shape: stretched onto the image its classes would land on the wrong pixels.
        let skew = (mw as i64 * ih as i64 - mh as i64 * iw as i64).unsigned_abs();
        if skew > (mh as u64).max(ih as u64) {
            bail!(
                "label map {} is {mw}×{mh}, its image {} {iw}×{ih}: not the image's shape \
                 (only a scaled copy can be aligned)",
                map.as_str(),
                path.display()
            );
        }
        let labels = LabelMap {
            width: mw as usize,
            height: mh as usize,
            data,
            ignore: IGNORE_LABEL,
            flip_swaps: Vec::new(),
        };
        let (iw, ih) = image_size;
        let b = match crop {
            Some([x, y, bw, bh]) => CropBox { x, y, w: bw, h: bh },
            None => CropBox {
                x: 0.0,
                y: 0.0,
                w: iw as f32,
                h: ih as f32,
            },
        };
        let at_input = resample_labels(&labels, iw, ih, b, w, h);
        out.values = at_input.data.iter().map(|c| *c as f32).collect();
        out.shape = vec![h as u64, w as u64].into();
    }
    Ok((pixels, out))
}

/// The targets of `records` as evaluation loads them for an input of `size` (label maps read
/// and resampled; records without one as they are), in order. A sample that cannot be read is
/// left out and named in the log, as the loader skips it in training and evaluation.
pub fn load_targets(records: &[Record], size: [usize; 2]) -> Vec<Record> {
    records
        .iter()
        .filter_map(|r| {
            if r.label_map.is_none() {
                return Some(r.clone());
            }
            match load_sample(r, size) {
                Ok((_, t)) => Some(t),
                Err(e) => {
                    tracing::warn!("skipping {}: {e:#}", r.image);
                    None
                }
            }
        })
        .collect()
}

/// Mirrors CHW pixels left–right in place.
pub fn mirror_pixels(px: &mut [f32], [h, w]: [usize; 2]) {
    for row in px.chunks_mut(w).take(3 * h) {
        row.reverse();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_fixture(dir: &Path) -> (String, String) {
        // 8×4 image: column x has red = 30·x; label map 4×2 (half resolution): class = x + 1.
        let img = image::RgbImage::from_fn(4, 8, |x, _| image::Rgb([30 * x as u8, 0, 0]));
        let labels = image::GrayImage::from_fn(2, 4, |x, y| image::Luma([(x + 1 + 10 * y) as u8]));
        let (ip, lp) = (dir.join("a.png"), dir.join("a_labels.png"));
        img.save(&ip).unwrap();
        labels.save(&lp).unwrap();
        (ip.display().to_string(), lp.display().to_string())
    }

    #[test]
    fn label_maps_follow_the_crop_and_resize_and_leave_ignore_outside() {
        let dir = tempfile::tempdir().unwrap();
        let (image, labels) = write_fixture(dir.path());
        let rec = Record {
            image: image.clone().into(),
            label_map: Some(labels.clone().into()).into(),
            ..Default::default()
        };
        // Whole image at 8×4: each label pixel covers 2×2 input pixels.
        let (px, r) = load_sample(&rec, [8, 4]).unwrap();
        assert_eq!(px.len(), 3 * 8 * 4);
        assert_eq!(&r.values[..4], &[1.0, 1.0, 2.0, 2.0]);
        assert_eq!(&r.values[28..], &[31.0, 31.0, 32.0, 32.0]);
        assert_eq!(r.shape.as_slice(), &[8, 4]);
        // The right half of the image, reaching 2 px past its right edge, at 4×2.
        let rec = Record {
            image: clasp_sdk::abi::crop_reference(&image, [2.0, 0.0, 4.0, 8.0]).into(),
            ..rec
        };
        let (_, r) = load_sample(&rec, [4, 2]).unwrap();
        assert_eq!(&r.values[..2], &[2.0, IGNORE_LABEL as f32]);
        assert_eq!(&r.values[6..], &[32.0, IGNORE_LABEL as f32]);
        // A broken crop box is an error naming the record.
        let bad = Record {
            image: format!("{image}#crop=1,2").into(),
            ..Default::default()
        };
        let e = load_sample(&bad, [4, 2]).unwrap_err().to_string();
        assert!(e.contains("a.png#crop=1,2"), "{e}");
    }

    #[test]
    fn a_label_map_of_another_shape_is_refused_naming_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let (image, _) = write_fixture(dir.path());
        // The 4×8 image with a 4×4 label map: not a scaled copy.
        let square = dir.path().join("square.png");
        image::GrayImage::new(4, 4).save(&square).unwrap();
        let rec = Record {
            image: image.into(),
            label_map: Some(square.display().to_string().into()).into(),
            ..Default::default()
        };
        let e = load_sample(&rec, [8, 4]).unwrap_err().to_string();
        assert!(
            e.contains("square.png is 4×4") && e.contains("a.png 4×8"),
            "{e}"
        );
    }

    #[test]
    fn mirroring_reverses_every_row_of_every_channel() {
        let mut px: Vec<f32> = (0..3 * 2 * 3).map(|v| v as f32).collect();
        mirror_pixels(&mut px, [2, 3]);
        assert_eq!(&px[..6], &[2.0, 1.0, 0.0, 5.0, 4.0, 3.0]);
        assert_eq!(&px[15..], &[17.0, 16.0, 15.0]);
    }
}
