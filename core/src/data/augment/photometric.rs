//! Colour augmentations of DINO (image only; targets are untouched).

use rand::seq::SliceRandom;
use rand::Rng;

use super::sample::Image;

fn luma(p: [f32; 3]) -> f32 {
    0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]
}

fn map_pixels(img: &mut Image, f: impl Fn([f32; 3]) -> [f32; 3]) {
    for px in img.data.chunks_exact_mut(3) {
        let out = f([px[0], px[1], px[2]]);
        px.copy_from_slice(&out.map(|v| v.clamp(0.0, 255.0)));
    }
}

fn rgb_to_hsv([r, g, b]: [f32; 3]) -> [f32; 3] {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let d = max - min;
    let h = if d == 0.0 {
        0.0
    } else if max == r {
        ((g - b) / d).rem_euclid(6.0)
    } else if max == g {
        (b - r) / d + 2.0
    } else {
        (r - g) / d + 4.0
    } / 6.0;
    let s = if max == 0.0 { 0.0 } else { d / max };
    [h, s, max]
}

fn hsv_to_rgb([h, s, v]: [f32; 3]) -> [f32; 3] {
    let h6 = h.rem_euclid(1.0) * 6.0;
    let i = h6.floor();
    let f = h6 - i;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    match i as i32 {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

/// torchvision's ColorJitter: brightness, contrast, saturation, hue in random order.
pub fn color_jitter<R: Rng>(
    img: &mut Image,
    brightness: f32,
    contrast: f32,
    saturation: f32,
    hue: f32,
    rng: &mut R,
) {
    let mut order = [0, 1, 2, 3];
    order.shuffle(rng);
    for op in order {
        match op {
            0 if brightness > 0.0 => {
                let f = rng.gen_range(1.0 - brightness..=1.0 + brightness);
                map_pixels(img, |p| p.map(|v| v * f));
            }
            1 if contrast > 0.0 => {
                let f = rng.gen_range(1.0 - contrast..=1.0 + contrast);
                let n = (img.data.len() / 3).max(1) as f32;
                let mean = img
                    .data
                    .chunks_exact(3)
                    .map(|p| luma([p[0], p[1], p[2]]))
                    .sum::<f32>()
                    / n;
                map_pixels(img, |p| p.map(|v| mean + (v - mean) * f));
            }
            2 if saturation > 0.0 => {
                let f = rng.gen_range(1.0 - saturation..=1.0 + saturation);
                map_pixels(img, |p| {
                    let l = luma(p);
                    p.map(|v| l + (v - l) * f)
                });
            }
            3 if hue > 0.0 => {
                let d = rng.gen_range(-hue..=hue);
                map_pixels(img, |p| {
                    let [h, s, v] = rgb_to_hsv(p);
                    hsv_to_rgb([h + d, s, v])
                });
            }
            _ => {}
        }
    }
}

pub fn grayscale(img: &mut Image) {
    map_pixels(img, |p| [luma(p); 3]);
}

/// Separable Gaussian blur with standard deviation `sigma` pixels.
pub fn gaussian_blur(img: &mut Image, sigma: f32) {
    let r = (3.0 * sigma).ceil().max(1.0) as i64;
    let kernel: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let norm: f32 = kernel.iter().sum();
    let kernel: Vec<f32> = kernel.iter().map(|k| k / norm).collect();
    let (w, h) = (img.width as i64, img.height as i64);
    let pass = |src: &[f32], horizontal: bool| -> Vec<f32> {
        let mut out = vec![0f32; src.len()];
        for y in 0..h {
            for x in 0..w {
                let mut acc = [0f32; 3];
                for (k, wgt) in kernel.iter().enumerate() {
                    let o = k as i64 - r;
                    let (xx, yy) = if horizontal {
                        ((x + o).clamp(0, w - 1), y)
                    } else {
                        (x, (y + o).clamp(0, h - 1))
                    };
                    let i = 3 * (yy * w + xx) as usize;
                    for c in 0..3 {
                        acc[c] += wgt * src[i + c];
                    }
                }
                let i = 3 * (y * w + x) as usize;
                out[i..i + 3].copy_from_slice(&acc);
            }
        }
        out
    };
    let tmp = pass(&img.data, true);
    img.data = pass(&tmp, false);
}

/// Inverts every channel value at or above `threshold`.
pub fn solarize(img: &mut Image, threshold: f32) {
    map_pixels(img, |p| {
        p.map(|v| if v >= threshold { 255.0 - v } else { v })
    });
}
