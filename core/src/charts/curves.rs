//! Line charts, one panel per series in a grid of two columns: training losses against the step,
//! metrics against the epoch, gradient cosines against the block. Non-finite values are gaps.

use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;

use super::{render, tick_label, value_range, FONT};

const PANEL: (u32, u32) = (360, 220);
const COLUMNS: usize = 2;
pub const LINE: RGBColor = RGBColor(31, 119, 180);
const GRID: RGBColor = RGBColor(232, 232, 232);
/// Series up to this many points get a marker per point.
const MARKED: usize = 40;

/// A named series of (x, y) points.
pub struct Series<'a> {
    pub name: &'a str,
    pub points: Vec<(f64, f64)>,
}

impl<'a> Series<'a> {
    /// Values at x = 1, 2, … (epochs).
    pub fn numbered(name: &'a str, values: impl IntoIterator<Item = f64>) -> Self {
        let points = (1..).map(f64::from).zip(values).collect();
        Series { name, points }
    }
}

fn panel(area: &super::Area, series: &Series, x_label: &str) -> Result<()> {
    let xs = value_range(series.points.iter().map(|p| p.0));
    let ys = value_range(series.points.iter().map(|p| p.1));
    let (x_span, y_span) = (xs.end - xs.start, ys.end - ys.start);
    // Steps, epochs and blocks are whole numbers: their ticks read "3", not "3.0".
    let whole = series.points.iter().all(|p| p.0.fract() == 0.0);
    let x_tick = |v: &f64| match whole && v.fract() == 0.0 {
        true => format!("{v:.0}"),
        false => tick_label(*v, x_span, 6),
    };
    let mut chart = ChartBuilder::on(area)
        .caption(series.name, (FONT, 15))
        .margin(8)
        .x_label_area_size(34)
        .y_label_area_size(58)
        .build_cartesian_2d(xs, ys)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .bold_line_style(GRID)
        .x_labels(6)
        .y_labels(5)
        .x_desc(x_label)
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 12))
        .x_label_formatter(&x_tick)
        .y_label_formatter(&|v| tick_label(*v, y_span, 5))
        .draw()?;
    let line = LINE.stroke_width(2);
    let marked = series.points.len() <= MARKED;
    for run in series.points.split(|p| !p.1.is_finite()) {
        if run.len() > 1 {
            chart.draw_series(LineSeries::new(run.iter().copied(), line))?;
        }
        // Markers where they can be told apart (epochs, blocks), and on points no line reaches.
        if marked || run.len() == 1 {
            chart.draw_series(run.iter().map(|p| Circle::new(*p, 3, LINE.filled())))?;
        }
    }
    Ok(())
}

/// Draws every series into one PNG at `path`, its x axis named `x_label`.
pub fn write_curves(path: &Path, x_label: &str, series: &[Series]) -> Result<()> {
    let rows = series.len().div_ceil(COLUMNS).max(1);
    let size = (PANEL.0 * COLUMNS as u32, PANEL.1 * rows as u32);
    render(path, size, |root| {
        for (area, s) in root.split_evenly((rows, COLUMNS)).iter().zip(series) {
            panel(area, s, x_label)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::count;
    use super::*;

    #[test]
    fn draws_one_panel_per_series_with_the_line_inside_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curves.png");
        let series = [
            Series::numbered("train loss", [0.9, 0.7, 0.5]),
            Series::numbered("mA", [0.5, 0.55, f64::NAN]),
            Series::numbered("f1", [0.3]),
        ];
        write_curves(&path, "epoch", &series).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!((img.width(), img.height()), (2 * PANEL.0, 2 * PANEL.1));
        let (w, h) = PANEL;
        let blue = |c: u32, r: u32| {
            count(
                &img,
                (c * w, r * h, (c + 1) * w, (r + 1) * h),
                [31, 119, 180],
            )
        };
        assert!(blue(0, 0) > 150, "the loss line is drawn: {}", blue(0, 0));
        assert!(blue(1, 0) > 60, "the metric line is drawn up to the NaN");
        assert!(blue(0, 1) > 10, "a single point is drawn");
        assert_eq!(blue(1, 1), 0, "no fourth panel");
        // Labels are written: dark pixels left of each plot area.
        let dark = img
            .enumerate_pixels()
            .filter(|(x, y, p)| *x < 60 && *y < h && p.0[0] < 80)
            .count();
        assert!(dark > 20, "y tick labels: {dark} dark pixels");
    }
}
