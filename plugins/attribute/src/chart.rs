//! The prediction picture: the image beside one labelled bar per attribute (green above 0.5, grey
//! below), with the probability written after the bar.

use std::path::Path;

use clasp_sdk::draw::{self, image, BLACK, WHITE};
use clasp_sdk::{fail, Result};
use image::{imageops::FilterType, Rgb, RgbImage};

const ROW: u32 = 17;
const BAR_W: u32 = 150;
const MARGIN: u32 = 8;
const ON: Rgb<u8> = Rgb([40, 160, 60]);
const OFF: Rgb<u8> = Rgb([175, 175, 175]);

pub fn bar_chart(image: &Path, labels: &[&str], probs: &[f32], out: &Path) -> Result<()> {
    if labels.len() != probs.len() {
        fail!(
            "{} probabilities for {} attributes",
            probs.len(),
            labels.len()
        );
    }
    let img = match image::open(image) {
        Ok(i) => i.to_rgb8(),
        Err(e) => fail!("decoding {}: {e}", image.display()),
    };
    let height = ROW * probs.len() as u32 + 2 * MARGIN;
    // The person at the chart's height, aspect kept.
    let scaled_w = (img.width() as f64 * height as f64 / img.height().max(1) as f64).round() as u32;
    let person = image::imageops::resize(&img, scaled_w.max(1), height, FilterType::Triangle);
    let chart_x = scaled_w + MARGIN;
    let label_w = labels
        .iter()
        .map(|l| draw::text_width(l, draw::TEXT_PX))
        .max()
        .unwrap_or(0)
        + MARGIN;
    let value_w = draw::text_width("0.00", draw::TEXT_PX) + 4;
    let mut canvas =
        RgbImage::from_pixel(chart_x + label_w + BAR_W + value_w + MARGIN, height, WHITE);
    image::imageops::overlay(&mut canvas, &person, 0, 0);
    for (i, (label, p)) in labels.iter().zip(probs).enumerate() {
        let y = (MARGIN + i as u32 * ROW) as i64;
        draw::text(
            &mut canvas,
            chart_x as i64,
            y + 1,
            label,
            draw::TEXT_PX,
            BLACK,
        );
        let bar_x = (chart_x + label_w) as i64;
        let len = (p.clamp(0.0, 1.0) * BAR_W as f32).round() as u32;
        draw::fill_rect(
            &mut canvas,
            bar_x,
            y + 1,
            len,
            ROW - 2,
            if *p > 0.5 { ON } else { OFF },
        );
        // The 0.5 threshold.
        draw::fill_rect(&mut canvas, bar_x + BAR_W as i64 / 2, y, 1, ROW, BLACK);
        draw::text(
            &mut canvas,
            bar_x + BAR_W as i64 + 4,
            y + 1,
            &format!("{p:.2}"),
            draw::TEXT_PX,
            BLACK,
        );
    }
    match canvas.save(out) {
        Ok(()) => Ok(()),
        Err(e) => fail!("writing {}: {e}", out.display()),
    }
}
