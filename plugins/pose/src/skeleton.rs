//! The prediction picture: the skeleton over the image, enlarged; keypoints below the confidence
//! threshold and the limbs that touch them are left out. Left limbs green, right limbs orange,
//! the centre blue (MMPose's colours).

use std::path::Path;

use clasp_sdk::draw::{self, image, BLACK, WHITE};
use clasp_sdk::{fail, Result};
use image::{imageops::FilterType, Rgb};

use crate::keypoints::{side, SKELETON};

const HEIGHT: u32 = 384;

fn colour(side: i32) -> Rgb<u8> {
    match side {
        -1 => Rgb([0, 200, 0]),
        1 => Rgb([255, 128, 0]),
        _ => Rgb([51, 153, 255]),
    }
}

/// Draws keypoints `(u, v, confidence)`, normalised to the image, over `image` into `out`.
pub fn draw_skeleton(image: &Path, kps: &[[f32; 3]], threshold: f32, out: &Path) -> Result<()> {
    let img = match image::open(image) {
        Ok(i) => i.to_rgb8(),
        Err(e) => fail!("decoding {}: {e}", image.display()),
    };
    let scale = HEIGHT as f64 / img.height().max(1) as f64;
    let w = ((img.width() as f64 * scale).round() as u32).max(1);
    let mut canvas = image::imageops::resize(&img, w, HEIGHT, FilterType::Triangle);
    let at = |k: &[f32; 3]| {
        (
            (k[0] as f64 * w as f64) as i64,
            (k[1] as f64 * HEIGHT as f64) as i64,
        )
    };
    for (a, b) in SKELETON {
        let (ka, kb) = (&kps[a], &kps[b]);
        if ka[2] < threshold || kb[2] < threshold {
            continue;
        }
        let s = if side(a) == side(b) { side(a) } else { 0 };
        draw::line(&mut canvas, at(ka), at(kb), 3, colour(s));
    }
    for (i, k) in kps.iter().enumerate() {
        if k[2] < threshold {
            continue;
        }
        let (x, y) = at(k);
        draw::fill_rect(&mut canvas, x - 4, y - 4, 9, 9, BLACK);
        draw::fill_rect(&mut canvas, x - 3, y - 3, 7, 7, colour(side(i)));
    }
    let shown = kps.iter().filter(|k| k[2] >= threshold).count();
    draw::fill_rect(&mut canvas, 0, 0, w, 17, WHITE);
    draw::text(
        &mut canvas,
        2,
        2,
        &format!("{shown}/{} keypoints", kps.len()),
        draw::TEXT_PX,
        BLACK,
    );
    match canvas.save(out) {
        Ok(()) => Ok(()),
        Err(e) => fail!("writing {}: {e}", out.display()),
    }
}
