//! Reading a folder of images into normalised `[3, H, W]` tensors.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use image::imageops::FilterType;

use super::augment::Image;

/// ImageNet statistics, as fast-reid, TransReID and SOLIDER normalise person crops.
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];
/// CLIP's preprocessing statistics.
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

const EXTENSIONS: [&str; 5] = ["jpg", "jpeg", "png", "bmp", "webp"];

/// Image files directly inside `dir`, sorted by name.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_image(p))
        .collect();
    out.sort();
    Ok(out)
}

/// Image files anywhere under `dir` (recursively), sorted by path: unlabeled pre-training data.
pub fn list_images_recursive(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let p = entry?.path();
            if p.is_dir() {
                stack.push(p);
            } else if is_image(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Every image the project reads goes through here: decoded, or an error naming the file. A
/// JPEG cut off before its end-of-image marker is refused too: the decoder would fill the
/// missing rows with grey and the run would train on them without a word.
pub fn open_image(path: &Path) -> Result<image::DynamicImage> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let format = image::guess_format(&bytes)
        .with_context(|| format!("decoding {}: not an image format it knows", path.display()))?;
    if format == image::ImageFormat::Jpeg && !ends_with_jpeg_eoi(&bytes) {
        bail!(
            "decoding {}: truncated JPEG (no end-of-image marker)",
            path.display()
        );
    }
    image::load_from_memory_with_format(&bytes, format)
        .with_context(|| format!("decoding {}", path.display()))
}

/// Whether the JPEG data ends with its EOI marker (FF D9), allowing trailing padding bytes.
fn ends_with_jpeg_eoi(bytes: &[u8]) -> bool {
    let end = bytes
        .iter()
        .rposition(|b| *b != 0 && !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    end >= 2 && bytes[end - 2..end] == [0xFF, 0xD9]
}

/// Decodes an image file into an augmentable [`Image`].
pub fn decode(path: &Path) -> Result<Image> {
    let img = open_image(path)?.to_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    Ok(Image::from_rgb8(w, h, img.as_raw()))
}

/// Normalises to CHW f32 with per-channel `mean`/`std` (fractions of 255).
pub fn normalize_chw(img: &Image, mean: [f32; 3], std: [f32; 3]) -> Vec<f32> {
    let (w, h) = (img.width, img.height);
    let mut out = vec![0f32; 3 * w * h];
    for i in 0..w * h {
        for c in 0..3 {
            out[c * w * h + i] = (img.data[3 * i + c] / 255.0 - mean[c]) / std[c];
        }
    }
    out
}

/// Decodes `path`, resizes it to `h`×`w` (bilinear) and normalises it: CHW f32.
pub fn load_normalized(path: &Path, h: usize, w: usize) -> Result<Vec<f32>> {
    let img = open_image(path)?.to_rgb8();
    let img = image::imageops::resize(&img, w as u32, h as u32, FilterType::Triangle);
    Ok(normalize_chw(
        &Image::from_rgb8(w, h, img.as_raw()),
        MEAN,
        STD,
    ))
}
