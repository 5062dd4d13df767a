//! Crops, resizes and flips applied identically to the image, label maps, grids and keypoints.

use super::sample::{flipped_keypoint, Image, LabelMap, Sample};

/// A source rectangle in continuous pixel coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropBox {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

/// Bilinear resampling of `box` in `src` to `out_w`×`out_h` (pixel centres aligned, as
/// `align_corners=False`); outside the source is clamped to the edge.
pub fn resample_image(src: &Image, b: CropBox, out_w: usize, out_h: usize) -> Image {
    let (sx, sy) = (b.w / out_w as f32, b.h / out_h as f32);
    let mut data = vec![0f32; out_w * out_h * 3];
    for j in 0..out_h {
        let fy = (b.y + (j as f32 + 0.5) * sy - 0.5).clamp(0.0, (src.height - 1) as f32);
        let (y0, ty) = (fy.floor() as usize, fy.fract());
        let y1 = (y0 + 1).min(src.height - 1);
        for i in 0..out_w {
            let fx = (b.x + (i as f32 + 0.5) * sx - 0.5).clamp(0.0, (src.width - 1) as f32);
            let (x0, tx) = (fx.floor() as usize, fx.fract());
            let x1 = (x0 + 1).min(src.width - 1);
            for c in 0..3 {
                let p = |x: usize, y: usize| src.data[3 * (y * src.width + x) + c];
                let top = p(x0, y0) + (p(x1, y0) - p(x0, y0)) * tx;
                let bottom = p(x0, y1) + (p(x1, y1) - p(x0, y1)) * tx;
                data[3 * (j * out_w + i) + c] = top + (bottom - top) * ty;
            }
        }
    }
    Image {
        width: out_w,
        height: out_h,
        data,
    }
}

/// Nearest-neighbour resampling of a label map whose grid covers the image `img_w`×`img_h`;
/// positions outside the source become `ignore`.
pub fn resample_labels(
    src: &LabelMap,
    img_w: usize,
    img_h: usize,
    b: CropBox,
    out_w: usize,
    out_h: usize,
) -> LabelMap {
    // Express the crop in the map's own resolution.
    let (kx, ky) = (
        src.width as f32 / img_w as f32,
        src.height as f32 / img_h as f32,
    );
    let (bx, by, bw, bh) = (b.x * kx, b.y * ky, b.w * kx, b.h * ky);
    let mut data = vec![src.ignore; out_w * out_h];
    for j in 0..out_h {
        let fy = by + (j as f32 + 0.5) * bh / out_h as f32;
        if fy < 0.0 || fy >= src.height as f32 {
            continue;
        }
        for i in 0..out_w {
            let fx = bx + (i as f32 + 0.5) * bw / out_w as f32;
            if fx < 0.0 || fx >= src.width as f32 {
                continue;
            }
            data[j * out_w + i] = src.data[fy as usize * src.width + fx as usize];
        }
    }
    LabelMap {
        width: out_w,
        height: out_h,
        data,
        ignore: src.ignore,
        flip_swaps: src.flip_swaps.clone(),
    }
}

/// Crops `b` out of the sample and resizes it to `out_w`×`out_h`; each grid keeps its ratio to
/// the image. Keypoints that leave the crop become `[0, 0, 0]`, as COCO marks unlabelled ones.
pub fn crop_resize(s: &Sample, b: CropBox, out_w: usize, out_h: usize) -> Sample {
    let (iw, ih) = (s.image.width, s.image.height);
    let grids = s
        .grids
        .iter()
        .map(|g| {
            let gw = (g.width * out_w).div_ceil(iw).max(1);
            let gh = (g.height * out_h).div_ceil(ih).max(1);
            resample_labels(g, iw, ih, b, gw, gh)
        })
        .collect();
    let keypoints = s.keypoints.as_ref().map(|kps| {
        kps.iter()
            .map(|&[x, y, v]| {
                let (nx, ny) = (
                    (x - b.x) * out_w as f32 / b.w,
                    (y - b.y) * out_h as f32 / b.h,
                );
                if v > 0.0 && nx >= 0.0 && ny >= 0.0 && nx < out_w as f32 && ny < out_h as f32 {
                    [nx, ny, v]
                } else {
                    [0.0, 0.0, 0.0]
                }
            })
            .collect()
    });
    Sample {
        image: resample_image(&s.image, b, out_w, out_h),
        labels: s
            .labels
            .as_ref()
            .map(|l| resample_labels(l, iw, ih, b, out_w, out_h)),
        grids,
        keypoints,
    }
}

fn flip_map(m: &LabelMap) -> LabelMap {
    let mut data = vec![0u8; m.data.len()];
    for y in 0..m.height {
        for x in 0..m.width {
            let v = m.data[y * m.width + x];
            let v = if v == m.ignore { v } else { m.flipped_class(v) };
            data[y * m.width + (m.width - 1 - x)] = v;
        }
    }
    LabelMap { data, ..m.clone() }
}

/// Mirrors the sample left–right: left/right classes and keypoints swap, so a left arm stays
/// labelled as the person's left arm.
pub fn hflip(s: &Sample) -> Sample {
    let img = &s.image;
    let mut data = vec![0f32; img.data.len()];
    for y in 0..img.height {
        for x in 0..img.width {
            let (a, b) = (
                3 * (y * img.width + x),
                3 * (y * img.width + img.width - 1 - x),
            );
            data[b..b + 3].copy_from_slice(&img.data[a..a + 3]);
        }
    }
    let keypoints = s.keypoints.as_ref().map(|kps| {
        let mut out = vec![[0f32; 3]; kps.len()];
        for (i, &[x, y, v]) in kps.iter().enumerate() {
            let j = if kps.len() == 17 {
                flipped_keypoint(i)
            } else {
                i
            };
            out[j] = if v > 0.0 {
                [img.width as f32 - x, y, v]
            } else {
                [0.0, 0.0, 0.0]
            };
        }
        out
    });
    Sample {
        image: Image {
            data,
            ..img.clone()
        },
        labels: s.labels.as_ref().map(flip_map),
        grids: s.grids.iter().map(flip_map).collect(),
        keypoints,
    }
}
