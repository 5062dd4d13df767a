//! DINO's multi-crop: two global views and several local views, each a random-resized crop with
//! flip and colour augmentations; targets follow each view's geometry.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::geometric::{crop_resize, hflip, CropBox};
use super::photometric::{color_jitter, gaussian_blur, grayscale, solarize};
use super::sample::Sample;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MultiCropConfig {
    /// Global view size [H, W].
    pub global_size: [usize; 2],
    pub local_size: [usize; 2],
    pub n_local: usize,
    /// Area fraction of the source each view covers.
    pub global_scale: [f32; 2],
    pub local_scale: [f32; 2],
    /// Aspect ratio range, relative to the view's own aspect.
    pub ratio: [f32; 2],
    pub flip_p: f64,
    pub jitter_p: f64,
    /// Brightness, contrast, saturation, hue.
    pub jitter: [f32; 4],
    pub grayscale_p: f64,
}

impl Default for MultiCropConfig {
    fn default() -> Self {
        Self {
            global_size: [256, 128],
            local_size: [128, 64],
            n_local: 6,
            global_scale: [0.4, 1.0],
            local_scale: [0.05, 0.4],
            ratio: [3.0 / 4.0, 4.0 / 3.0],
            flip_p: 0.5,
            jitter_p: 0.8,
            jitter: [0.4, 0.4, 0.2, 0.1],
            grayscale_p: 0.2,
        }
    }
}

/// torchvision's RandomResizedCrop box: area fraction in `scale`, aspect (w/h) in
/// `ratio × target_aspect` (log-uniform), ten tries, then a centre crop.
pub fn random_resized_box<R: Rng>(
    w: usize,
    h: usize,
    scale: [f32; 2],
    ratio: [f32; 2],
    target_aspect: f32,
    rng: &mut R,
) -> CropBox {
    let (wf, hf) = (w as f32, h as f32);
    let area = wf * hf;
    let (lo, hi) = (
        (ratio[0] * target_aspect).ln(),
        (ratio[1] * target_aspect).ln(),
    );
    for _ in 0..10 {
        let a = area * rng.gen_range(scale[0]..=scale[1]);
        let r = rng.gen_range(lo..=hi).exp();
        let (cw, ch) = ((a * r).sqrt(), (a / r).sqrt());
        if cw <= wf && ch <= hf && cw >= 1.0 && ch >= 1.0 {
            return CropBox {
                x: rng.gen_range(0.0..=wf - cw),
                y: rng.gen_range(0.0..=hf - ch),
                w: cw,
                h: ch,
            };
        }
    }
    let aspect = (wf / hf).clamp(lo.exp(), hi.exp());
    let (cw, ch) = if wf / hf > aspect {
        (hf * aspect, hf)
    } else {
        (wf, wf / aspect)
    };
    CropBox {
        x: (wf - cw) / 2.0,
        y: (hf - ch) / 2.0,
        w: cw,
        h: ch,
    }
}

/// One view: crop, flip, colour jitter, grayscale, blur with probability `blur_p`, solarisation
/// with probability `solarize_p`.
pub fn view<R: Rng>(
    s: &Sample,
    cfg: &MultiCropConfig,
    size: [usize; 2],
    scale: [f32; 2],
    blur_p: f64,
    solarize_p: f64,
    rng: &mut R,
) -> Sample {
    let [oh, ow] = size;
    let b = random_resized_box(
        s.image.width,
        s.image.height,
        scale,
        cfg.ratio,
        ow as f32 / oh as f32,
        rng,
    );
    let mut out = crop_resize(s, b, ow, oh);
    if rng.gen_bool(cfg.flip_p) {
        out = hflip(&out);
    }
    if rng.gen_bool(cfg.jitter_p) {
        let [br, co, sa, hu] = cfg.jitter;
        color_jitter(&mut out.image, br, co, sa, hu, rng);
    }
    if rng.gen_bool(cfg.grayscale_p) {
        grayscale(&mut out.image);
    }
    if rng.gen_bool(blur_p) {
        gaussian_blur(&mut out.image, rng.gen_range(0.1..2.0));
    }
    if rng.gen_bool(solarize_p) {
        solarize(&mut out.image, 128.0);
    }
    out
}

/// DINO's views: global 1 (always blurred), global 2 (rarely blurred, sometimes solarised), then
/// the local views (blurred half the time).
pub fn multi_crop<R: Rng>(s: &Sample, cfg: &MultiCropConfig, rng: &mut R) -> Vec<Sample> {
    let mut views = vec![
        view(s, cfg, cfg.global_size, cfg.global_scale, 1.0, 0.0, rng),
        view(s, cfg, cfg.global_size, cfg.global_scale, 0.1, 0.2, rng),
    ];
    for _ in 0..cfg.n_local {
        views.push(view(s, cfg, cfg.local_size, cfg.local_scale, 0.5, 0.0, rng));
    }
    views
}
