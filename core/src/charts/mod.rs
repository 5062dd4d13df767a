//! Charts written as PNG files — loss and metric curves, the PC-MoE gate heatmap, grouped bars
//! with their intervals — drawn by `plotters` on its bitmap backend, in DejaVu Sans embedded in
//! the binary (no system font is read).

pub mod bars;
pub mod curves;
pub mod heatmap;

use std::path::Path;
use std::sync::Once;

use anyhow::{Context, Result};
use image::RgbImage;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::register_font;

/// The family every chart's text is set in.
pub const FONT: &str = "sans-serif";

/// Makes the embedded font the one plotters finds under [`FONT`].
pub(crate) fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            let bytes = match style {
                FontStyle::Bold => dejavu::sans::bold(),
                _ => dejavu::sans::regular(),
            };
            // The bytes are a font shipped inside the `dejavu` crate; failing to parse them is a
            // build defect, caught by every chart test.
            if register_font(FONT, style, bytes).is_err() {
                panic!("the embedded DejaVu Sans does not parse");
            }
        }
    });
}

/// The area a chart draws on.
pub type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Draws a `width` × `height` chart on white with `draw` and writes it to `path` as PNG.
pub fn render(
    path: &Path,
    (width, height): (u32, u32),
    draw: impl FnOnce(&Area) -> Result<()>,
) -> Result<()> {
    register_fonts();
    let mut pixels = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        draw(&root).with_context(|| format!("drawing {}", path.display()))?;
        root.present()
            .with_context(|| format!("drawing {}", path.display()))?;
    }
    RgbImage::from_raw(width, height, pixels)
        .context("a bitmap of the chart's size")?
        .save(path)
        .with_context(|| format!("writing {}", path.display()))
}

/// The range a value axis spans: the data's, widened a little (and around a single value) so
/// no point sits on the frame; `[0, 1]` when nothing is finite.
pub fn value_range(values: impl IntoIterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    let pad = if hi - lo < 1e-12 {
        0.5_f64.max(lo.abs() * 0.1)
    } else {
        (hi - lo) * 0.08
    };
    lo - pad..hi + pad
}

/// Tick labels with as many decimals as ticks `span / ticks` apart need.
/// (Scientific notation when they would need more than six.)
pub fn tick_label(v: f64, span: f64, ticks: usize) -> String {
    let step = span.abs() / ticks.max(1) as f64;
    if !(step > 0.0 && step.is_finite()) {
        return format!("{v:.2}");
    }
    let decimals = -step.log10().floor();
    if decimals > 6.0 {
        return format!("{v:.1e}");
    }
    let decimals = decimals.max(0.0) as usize;
    format!("{v:.decimals$}")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// How many pixels of `img` inside the box have exactly `colour`.
    pub fn count(img: &RgbImage, (x0, y0, x1, y1): (u32, u32, u32, u32), colour: [u8; 3]) -> usize {
        (y0..y1.min(img.height()))
            .flat_map(|y| (x0..x1.min(img.width())).map(move |x| (x, y)))
            .filter(|(x, y)| img.get_pixel(*x, *y).0 == colour)
            .count()
    }

    #[test]
    fn value_ranges_pad_the_data_and_survive_no_data() {
        assert_eq!(value_range([f64::NAN]), 0.0..1.0);
        let r = value_range([2.0, 2.0]);
        assert!(r.start < 2.0 && r.end > 2.0);
        let r = value_range([0.0, 1.0, f64::INFINITY]);
        assert!(r.start < 0.0 && r.end > 1.0 && r.end < 1.2);
    }

    #[test]
    fn text_is_drawn_in_the_embedded_font() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.png");
        render(&path, (120, 40), |area| {
            area.draw(&Text::new("Chart", (5, 5), (FONT, 20).into_font()))?;
            Ok(())
        })
        .unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        let dark = img.pixels().filter(|p| p.0[0] < 100).count();
        assert!(dark > 40, "{dark} dark pixels");
    }

    #[test]
    fn tick_labels_carry_the_decimals_their_spacing_needs() {
        assert_eq!(tick_label(3.0, 10.0, 5), "3");
        assert_eq!(tick_label(0.5, 1.0, 5), "0.5");
        assert_eq!(tick_label(0.0125, 0.02, 5), "0.013");
        assert_eq!(tick_label(1234.0, 2000.0, 5), "1234");
        assert_eq!(tick_label(3e-9, 1e-8, 5), "3.0e-9");
    }
}
