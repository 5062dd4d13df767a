//! The prediction picture: the image, the same image with each class painted over it, and a
//! legend of the classes found, largest first.

use std::path::Path;

use clasp_sdk::draw::{self, image, BLACK, WHITE};
use clasp_sdk::{fail, Result};
use image::{imageops::FilterType, Rgb, RgbImage};

use crate::lip::{palette, CLASS_NAMES};

/// Height the person is drawn at (small crops are enlarged so the parts are visible).
const HEIGHT: u32 = 384;
const ROW: u32 = 16;
const MARGIN: u32 = 8;
const ALPHA: f32 = 0.55;

/// Draws `labels` (class ids at the image's own size) over the image at `image` into `out`.
pub fn draw_overlay(image: &Path, labels: &[u8], out: &Path) -> Result<()> {
    let img = match image::open(image) {
        Ok(i) => i.to_rgb8(),
        Err(e) => fail!("decoding {}: {e}", image.display()),
    };
    let (w, h) = (img.width(), img.height());
    if labels.len() != (w * h) as usize {
        fail!(
            "{} labels for a {w}×{h} image {}",
            labels.len(),
            image.display()
        );
    }
    let mut painted = img.clone();
    for (px, c) in painted.pixels_mut().zip(labels) {
        if *c == 0 {
            continue;
        }
        for (v, col) in px.0.iter_mut().zip(palette(*c)) {
            *v = (*v as f32 * (1.0 - ALPHA) + col as f32 * ALPHA).round() as u8;
        }
    }
    let scaled_w = ((w as f64 * HEIGHT as f64 / h.max(1) as f64).round() as u32).max(1);
    let left = image::imageops::resize(&img, scaled_w, HEIGHT, FilterType::Triangle);
    let right = image::imageops::resize(&painted, scaled_w, HEIGHT, FilterType::Nearest);

    let mut counts = [0usize; 256];
    labels.iter().for_each(|c| counts[*c as usize] += 1);
    let mut present: Vec<(u8, usize)> = (0..CLASS_NAMES.len() as u8)
        .filter(|c| counts[*c as usize] > 0)
        .map(|c| (c, counts[c as usize]))
        .collect();
    present.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));

    let legend_x = 2 * scaled_w + 2 * MARGIN;
    let canvas_h = HEIGHT.max(MARGIN * 2 + ROW * present.len() as u32);
    let entry = |c: u8, n: usize| {
        let share = 100.0 * n as f64 / labels.len() as f64;
        format!("{} {share:.0}%", CLASS_NAMES[c as usize])
    };
    let legend_w = present
        .iter()
        .map(|(c, n)| draw::text_width(&entry(*c, *n), draw::TEXT_PX))
        .max()
        .unwrap_or(0)
        + 14;
    let mut canvas = RgbImage::from_pixel(legend_x + legend_w + MARGIN, canvas_h, WHITE);
    image::imageops::overlay(&mut canvas, &left, 0, 0);
    image::imageops::overlay(&mut canvas, &right, (scaled_w + MARGIN) as i64, 0);
    for (i, (c, n)) in present.iter().enumerate() {
        let y = (MARGIN + i as u32 * ROW) as i64;
        draw::fill_rect(&mut canvas, legend_x as i64, y, 10, 10, Rgb(palette(*c)));
        draw::rect_outline(&mut canvas, legend_x as i64, y, 10, 10, 1, BLACK);
        let text = entry(*c, *n);
        draw::text(
            &mut canvas,
            legend_x as i64 + 14,
            y - 2,
            &text,
            draw::TEXT_PX,
            BLACK,
        );
    }
    match canvas.save(out) {
        Ok(()) => Ok(()),
        Err(e) => fail!("writing {}: {e}", out.display()),
    }
}
