//! A contact sheet: each sample as the image, its part-label overlay and its skeleton.

use super::lip;
use super::pose::SKELETON;
use super::scene::Rendered;

/// Draws a line into an RGB8 buffer (for skeletons).
pub fn draw_line(img: &mut image::RgbImage, a: (f32, f32), b: (f32, f32), colour: [u8; 3]) {
    let steps = ((b.0 - a.0).abs().max((b.1 - a.1).abs()).ceil() as usize).max(1);
    for i in 0..=steps {
        let t = i as f32 / steps as f32;
        let (x, y) = (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
        for (dx, dy) in [(0, 0), (1, 0), (0, 1)] {
            let (xi, yi) = (x as i64 + dx, y as i64 + dy);
            if xi >= 0 && yi >= 0 && (xi as u32) < img.width() && (yi as u32) < img.height() {
                img.put_pixel(xi as u32, yi as u32, image::Rgb(colour));
            }
        }
    }
}

/// Image with the label map blended in (background left as is) and the skeleton on top.
pub fn annotated(r: &Rendered) -> image::RgbImage {
    let mut img = image::RgbImage::from_raw(r.width as u32, r.height as u32, r.rgb.clone())
        .expect("buffer matches size");
    for (i, p) in img.pixels_mut().enumerate() {
        let l = r.labels[i];
        if l != lip::BACKGROUND {
            let c = lip::palette(l);
            for k in 0..3 {
                p[k] = ((p[k] as u16 + c[k] as u16) / 2) as u8;
            }
        }
    }
    draw_skeleton(&mut img, &r.keypoints);
    img
}

pub fn draw_skeleton(img: &mut image::RgbImage, kps: &[[f32; 3]; 17]) {
    for [a, b] in SKELETON {
        let (p, q) = (kps[a as usize - 1], kps[b as usize - 1]);
        if p[2] > 0.0 && q[2] > 0.0 {
            draw_line(img, (p[0], p[1]), (q[0], q[1]), [255, 255, 255]);
        }
    }
    for kp in kps {
        if kp[2] > 0.0 {
            let c = if kp[2] == 2.0 {
                [0, 255, 0]
            } else {
                [255, 0, 0]
            };
            for dy in -1..=1 {
                for dx in -1..=1 {
                    let (x, y) = (kp[0] as i64 + dx, kp[1] as i64 + dy);
                    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
                        img.put_pixel(x as u32, y as u32, image::Rgb(c));
                    }
                }
            }
        }
    }
}

/// Pairs (plain image, annotated image) side by side, `cols` pairs per row.
pub fn contact_sheet(samples: &[Rendered], cols: usize) -> image::RgbImage {
    let (w, h) = (samples[0].width as u32, samples[0].height as u32);
    let cols = cols.max(1);
    let rows = samples.len().div_ceil(cols);
    let gap = 4u32;
    let mut sheet = image::RgbImage::from_pixel(
        cols as u32 * (2 * w + 2 * gap),
        rows as u32 * (h + gap),
        image::Rgb([255, 255, 255]),
    );
    for (i, s) in samples.iter().enumerate() {
        let (cx, cy) = (
            (i % cols) as u32 * (2 * w + 2 * gap),
            (i / cols) as u32 * (h + gap),
        );
        let plain = image::RgbImage::from_raw(w, h, s.rgb.clone()).expect("buffer matches size");
        image::imageops::overlay(&mut sheet, &plain, cx as i64, cy as i64);
        image::imageops::overlay(&mut sheet, &annotated(s), (cx + w + gap) as i64, cy as i64);
    }
    sheet
}
