//! CLIP's image preprocessing as transformers' `CLIPImageProcessor` does it: the shortest side
//! resized to 224 with PIL's bicubic filter (reproduced here in PIL's own fixed-point arithmetic,
//! so the 8-bit result is the same), a centre crop, ÷255 and CLIP's mean/std. Settings come from
//! the teacher folder's `preprocessor_config.json` when it has one.

use std::path::Path;

use anyhow::{Context, Result};
use image::RgbImage;
use serde::Deserialize;

use crate::data::images::{CLIP_MEAN, CLIP_STD};
// PIL's bicubic kernel (a = −0.5, support 2) is the one PyTorch's anti-aliased bicubic uses.
use crate::model::pos_embed::bicubic_aa as bicubic;

/// PIL's fixed-point precision for 8-bit resampling (`Resample.c`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Per output position: the first input index and fixed-point weights (`precompute_coeffs` +
/// `normalize_coeffs_8bpc`).
fn coefficients(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i64>)> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            // C's (int) cast truncates toward zero.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let w: Vec<f64> = (xmin..xmax)
                .map(|x| bicubic((x as f64 - center + 0.5) / filterscale))
                .collect();
            let total: f64 = w.iter().sum();
            let fixed = w
                .iter()
                .map(|v| {
                    let v = if total != 0.0 { v / total } else { *v };
                    let s = v * (1u64 << PRECISION_BITS) as f64;
                    (if v < 0.0 { s - 0.5 } else { s + 0.5 }) as i64
                })
                .collect();
            (xmin, fixed)
        })
        .collect()
}

fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// `Image.resize((w, h), Image.BICUBIC)` of an RGB image, bit for bit: horizontal pass, then
/// vertical, each rounded to 8 bits.
pub fn pil_bicubic_resize(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    let (iw, ih) = (img.width() as usize, img.height() as usize);
    let (w, h) = (w as usize, h as usize);
    let src = img.as_raw();
    let half = 1i64 << (PRECISION_BITS - 1);
    let horizontal = if w != iw {
        let cx = coefficients(iw, w);
        let mut out = vec![0u8; ih * w * 3];
        for y in 0..ih {
            for (x, (x0, k)) in cx.iter().enumerate() {
                for c in 0..3 {
                    let mut acc = half;
                    for (i, kv) in k.iter().enumerate() {
                        acc += src[(y * iw + x0 + i) * 3 + c] as i64 * kv;
                    }
                    out[(y * w + x) * 3 + c] = clip8(acc);
                }
            }
        }
        out
    } else {
        src.to_vec()
    };
    let vertical = if h != ih {
        let cy = coefficients(ih, h);
        let mut out = vec![0u8; h * w * 3];
        for (y, (y0, k)) in cy.iter().enumerate() {
            for x in 0..w {
                for c in 0..3 {
                    let mut acc = half;
                    for (i, kv) in k.iter().enumerate() {
                        acc += horizontal[((y0 + i) * w + x) * 3 + c] as i64 * kv;
                    }
                    out[(y * w + x) * 3 + c] = clip8(acc);
                }
            }
        }
        out
    } else {
        horizontal
    };
    RgbImage::from_raw(w as u32, h as u32, vertical).expect("sized buffer")
}

#[derive(Debug, Clone, Deserialize)]
struct SizeEntry {
    shortest_edge: Option<usize>,
    height: Option<usize>,
    width: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
struct ProcessorFile {
    size: Option<SizeEntry>,
    crop_size: Option<SizeEntry>,
    image_mean: Option<[f32; 3]>,
    image_std: Option<[f32; 3]>,
    resample: Option<u32>,
    do_center_crop: Option<bool>,
}

/// What a CLIP's images go through before the vision tower.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipPreprocess {
    /// The shortest side is resized to this.
    pub shortest_edge: usize,
    /// `[H, W]` of the centre crop.
    pub crop: [usize; 2],
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Default for ClipPreprocess {
    fn default() -> Self {
        Self {
            shortest_edge: 224,
            crop: [224, 224],
            mean: CLIP_MEAN,
            std: CLIP_STD,
        }
    }
}

impl ClipPreprocess {
    /// The teacher folder's `preprocessor_config.json`, CLIP's defaults where it is silent or
    /// absent.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("preprocessor_config.json");
        let mut p = Self::default();
        if !path.is_file() {
            return Ok(p);
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let de = &mut serde_json::Deserializer::from_str(&text);
        let f: ProcessorFile = serde_path_to_error::deserialize(de)
            .map_err(|e| anyhow::anyhow!("{}: at `{}`: {}", path.display(), e.path(), e.inner()))?;
        // PIL's BICUBIC is 3; other filters and skipping the crop are not what CLIP does.
        if f.resample.is_some_and(|r| r != 3) {
            anyhow::bail!(
                "{}: `resample` = {:?}: only PIL's bicubic (3) is supported",
                path.display(),
                f.resample
            );
        }
        if f.do_center_crop == Some(false) {
            anyhow::bail!(
                "{}: `do_center_crop` = false is not supported",
                path.display()
            );
        }
        if let Some(s) = f.size.and_then(|s| s.shortest_edge) {
            p.shortest_edge = s;
        }
        if let Some(c) = f.crop_size {
            if let (Some(h), Some(w)) = (c.height, c.width) {
                p.crop = [h, w];
            }
        }
        p.mean = f.image_mean.unwrap_or(p.mean);
        p.std = f.image_std.unwrap_or(p.std);
        Ok(p)
    }

    /// Resized (shortest side) and centre-cropped, still 8-bit.
    pub fn resize_and_crop(&self, img: &RgbImage) -> RgbImage {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let (short, long) = if w <= h { (w, h) } else { (h, w) };
        let new_long = self.shortest_edge * long / short.max(1);
        let (nw, nh) = if w <= h {
            (self.shortest_edge, new_long)
        } else {
            (new_long, self.shortest_edge)
        };
        let resized = pil_bicubic_resize(img, nw as u32, nh as u32);
        let [ch, cw] = self.crop;
        // transformers pads with zeros when the crop is larger than the image.
        let top = (nh as i64 - ch as i64).div_euclid(2);
        let left = (nw as i64 - cw as i64).div_euclid(2);
        RgbImage::from_fn(cw as u32, ch as u32, |x, y| {
            let (sx, sy) = (x as i64 + left, y as i64 + top);
            if sx < 0 || sy < 0 || sx >= nw as i64 || sy >= nh as i64 {
                image::Rgb([0, 0, 0])
            } else {
                *resized.get_pixel(sx as u32, sy as u32)
            }
        })
    }

    /// CHW pixels for the vision tower.
    pub fn pixels(&self, img: &RgbImage) -> Vec<f32> {
        self.normalize(&self.resize_and_crop(img))
    }

    /// CHW pixels of a whole person crop resized to `[H, W]` (bicubic, no centre crop): what the
    /// teacher sees when it trains on or labels person crops, whose shape is not CLIP's square.
    pub fn person_pixels(&self, img: &RgbImage, size: [usize; 2]) -> Vec<f32> {
        let [h, w] = size;
        if img.width() as usize == w && img.height() as usize == h {
            return self.normalize(img);
        }
        self.normalize(&pil_bicubic_resize(img, w as u32, h as u32))
    }

    fn normalize(&self, out: &RgbImage) -> Vec<f32> {
        let (w, h) = (out.width() as usize, out.height() as usize);
        let mut px = vec![0f32; 3 * w * h];
        for (i, p) in out.pixels().enumerate() {
            for c in 0..3 {
                // As transformers: ×(1/255) in f64, then f32, then (x − mean) / std in f32.
                let v = (p.0[c] as f64 * (1.0 / 255.0)) as f32;
                px[c * w * h + i] = (v - self.mean[c]) / self.std[c];
            }
        }
        px
    }
}
