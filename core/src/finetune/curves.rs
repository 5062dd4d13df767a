//! `curves.png` in the run directory: one small chart per series (training loss, then each of the
//! plugin's metrics) against the epoch, redrawn after every epoch.

use std::path::Path;

use anyhow::{Context, Result};
use clasp_sdk::draw::{self, image::RgbImage, BLACK, WHITE};
use image::Rgb;

const PANEL_W: u32 = 320;
const PANEL_H: u32 = 180;
const COLUMNS: u32 = 2;
/// Plot area inside a panel: left margin for the y labels, top for the title.
const LEFT: u32 = 56;
const TOP: u32 = 22;
const BOTTOM: u32 = 22;
const RIGHT: u32 = 12;
const LINE: Rgb<u8> = Rgb([31, 119, 180]);
const GRID: Rgb<u8> = Rgb([225, 225, 225]);

/// A named series of values, one per epoch.
pub struct Series<'a> {
    pub name: &'a str,
    pub values: Vec<f64>,
}

fn panel(img: &mut RgbImage, x0: i64, y0: i64, s: &Series) {
    draw::text(img, x0 + LEFT as i64, y0 + 6, s.name, 1, BLACK);
    let (pw, ph) = (PANEL_W - LEFT - RIGHT, PANEL_H - TOP - BOTTOM);
    let (px, py) = (x0 + LEFT as i64, y0 + TOP as i64);
    let finite: Vec<f64> = s.values.iter().copied().filter(|v| v.is_finite()).collect();
    let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if !lo.is_finite() {
        (0.0, 1.0)
    } else if hi - lo < 1e-12 {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    };
    for k in 0..=4 {
        let y = py + (ph as i64 * k) / 4;
        draw::fill_rect(img, px, y, pw, 1, GRID);
    }
    draw::rect_outline(img, px, py, pw, ph, 1, BLACK);
    draw::text(img, x0 + 2, py - 3, &format!("{hi:.4}"), 1, BLACK);
    draw::text(
        img,
        x0 + 2,
        py + ph as i64 - 5,
        &format!("{lo:.4}"),
        1,
        BLACK,
    );
    let n = s.values.len();
    draw::text(img, px, py + ph as i64 + 6, "1", 1, BLACK);
    let last = format!("epoch {n}");
    let right = px + pw as i64 - draw::text_width(&last, 1) as i64;
    draw::text(img, right, py + ph as i64 + 6, &last, 1, BLACK);
    let point = |i: usize, v: f64| -> (i64, i64) {
        let fx = if n > 1 {
            i as f64 / (n - 1) as f64
        } else {
            0.5
        };
        let fy = (v - lo) / (hi - lo);
        (
            px + 3 + (fx * (pw - 7) as f64).round() as i64,
            py + 3 + ((1.0 - fy) * (ph - 7) as f64).round() as i64,
        )
    };
    let mut prev = None;
    for (i, v) in s.values.iter().enumerate() {
        if !v.is_finite() {
            prev = None;
            continue;
        }
        let p = point(i, *v);
        if let Some(q) = prev {
            draw::line(img, q, p, 2, LINE);
        }
        draw::fill_rect(img, p.0 - 2, p.1 - 2, 5, 5, LINE);
        prev = Some(p);
    }
}

/// Draws every series into one PNG at `path`.
pub fn write_curves(path: &Path, series: &[Series]) -> Result<()> {
    let rows = (series.len() as u32).div_ceil(COLUMNS).max(1);
    let mut img = RgbImage::from_pixel(PANEL_W * COLUMNS, PANEL_H * rows, WHITE);
    for (i, s) in series.iter().enumerate() {
        let (c, r) = (i as u32 % COLUMNS, i as u32 / COLUMNS);
        panel(&mut img, (c * PANEL_W) as i64, (r * PANEL_H) as i64, s);
    }
    img.save(path)
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_one_panel_per_series_with_the_line_inside_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curves.png");
        let series = [
            Series {
                name: "train_loss",
                values: vec![0.9, 0.7, 0.5],
            },
            Series {
                name: "mA",
                values: vec![0.5, 0.55, f64::NAN],
            },
            Series {
                name: "f1",
                values: vec![0.3],
            },
        ];
        write_curves(&path, &series).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!((img.width(), img.height()), (640, 360));
        let blue = |x0: u32, y0: u32| {
            (y0..y0 + PANEL_H)
                .flat_map(|y| (x0..x0 + PANEL_W).map(move |x| (x, y)))
                .filter(|(x, y)| *img.get_pixel(*x, *y) == LINE)
                .count()
        };
        assert!(blue(0, 0) > 50, "the loss line is drawn");
        assert!(
            blue(PANEL_W, 0) > 20,
            "the metric line is drawn up to the NaN"
        );
        assert!(blue(0, PANEL_H) > 0, "a single point is drawn");
        assert_eq!(blue(PANEL_W, PANEL_H), 0, "no fourth panel");
    }
}
