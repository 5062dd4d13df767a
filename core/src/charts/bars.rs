//! Grouped bars with 95 % intervals as whiskers and a reference level as a grey line per group —
//! the results chart: one panel per protocol, one group per task (each with its own value axis,
//! since metrics differ), one bar per variant, and a legend in a strip of its own below the
//! panels so it never covers a label.

use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{register_fonts, render, tick_label, Area, FONT};

const GROUP: (u32, u32) = (240, 250);
const TITLE_H: u32 = 26;
const LEGEND_ROW: u32 = 22;
pub const COLOURS: [RGBColor; 6] = [
    RGBColor(150, 150, 150),
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];
// Slightly blue, so anti-aliased black text (pure greys) is never mistaken for it.
const REFERENCE: RGBColor = RGBColor(85, 85, 100);

/// A value with its interval.
#[derive(Debug, Clone, Copy)]
pub struct Bar {
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
}

/// One group of bars, in legend order (`None`: that series has no value here).
pub struct Group {
    pub name: String,
    pub bars: Vec<Option<Bar>>,
    pub reference: Option<f64>,
}

pub struct Panel {
    pub title: String,
    pub groups: Vec<Group>,
}

pub struct BarChart<'a> {
    /// The bar series' names, in the order of every group's bars.
    pub series: &'a [&'a str],
    /// What the grey line is.
    pub reference: &'a str,
    pub panels: Vec<Panel>,
}

fn group(area: &Area, g: &Group) -> Result<()> {
    let top = g
        .bars
        .iter()
        .flatten()
        .map(|b| b.hi.max(b.value))
        .chain(g.reference)
        .filter(|v| v.is_finite())
        .fold(1e-6, f64::max)
        * 1.12;
    let n = g.bars.len() as f64;
    let mut chart = ChartBuilder::on(area)
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.6..n - 0.4, 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .disable_x_axis()
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(235, 235, 235))
        .y_labels(5)
        .y_label_formatter(&|v| tick_label(*v, top, 5))
        .label_style((FONT, 12))
        .x_desc(g.name.as_str())
        .axis_desc_style((FONT, 13))
        .draw()?;
    for (i, bar) in g.bars.iter().enumerate() {
        let Some(b) = bar else { continue };
        let x = i as f64;
        let colour = COLOURS[i % COLOURS.len()];
        chart.draw_series([Rectangle::new(
            [(x - 0.38, 0.0), (x + 0.38, b.value)],
            colour.filled(),
        )])?;
        if b.lo.is_finite() && b.hi.is_finite() {
            let whisker = ErrorBar::new_vertical(x, b.lo, b.value, b.hi, BLACK.stroke_width(1), 8);
            chart.draw_series([whisker])?;
        }
    }
    if let Some(level) = g.reference.filter(|v| v.is_finite()) {
        let line = [(-0.55, level), (n - 0.45, level)];
        chart.draw_series(LineSeries::new(line, REFERENCE.stroke_width(2)))?;
    }
    Ok(())
}

/// The legend's entries laid out in rows of at most `width` pixels: (row, x) of each.
fn legend_layout(labels: &[String], width: u32) -> Result<Vec<(u32, u32)>> {
    let font = (FONT, 13).into_font();
    let (mut row, mut x, mut at) = (0, 10, Vec::new());
    for label in labels {
        let w = 22 + font.box_size(label)?.0 + 18;
        if x + w > width && x > 10 {
            (row, x) = (row + 1, 10);
        }
        at.push((row, x));
        x += w;
    }
    Ok(at)
}

/// Writes the chart to `path`.
pub fn write_bar_chart(path: &Path, chart: &BarChart) -> Result<()> {
    register_fonts();
    let columns = chart
        .panels
        .iter()
        .map(|p| p.groups.len())
        .max()
        .unwrap_or(1)
        .max(1) as u32;
    let width = columns * GROUP.0 + 20;
    let mut labels: Vec<String> = chart.series.iter().map(|s| s.to_string()).collect();
    labels.push(chart.reference.to_string());
    let layout = legend_layout(&labels, width)?;
    let legend_rows = layout.last().map_or(0, |l| l.0 + 1);
    let panel_h = TITLE_H + GROUP.1;
    let height = chart.panels.len() as u32 * panel_h + legend_rows * LEGEND_ROW + 16;
    render(path, (width, height), |root| {
        for (p, panel) in chart.panels.iter().enumerate() {
            let y = (p as u32 * panel_h) as i32;
            let title = Text::new(panel.title.as_str(), (10, y + 6), (FONT, 15).into_font());
            root.draw(&title)?;
            let area = root
                .clone()
                .shrink((10, y as u32 + TITLE_H), (width - 20, GROUP.1));
            let cells = area.split_evenly((1, columns as usize));
            for (cell, g) in cells.iter().zip(&panel.groups) {
                group(cell, g)?;
            }
        }
        let legend_top = (chart.panels.len() as u32 * panel_h + 8) as i32;
        let font = TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        for (i, (label, (row, x))) in labels.iter().zip(&layout).enumerate() {
            let (x, y) = (*x as i32, legend_top + (*row * LEGEND_ROW) as i32 + 8);
            if i < chart.series.len() {
                let swatch = [(x, y - 6), (x + 14, y + 6)];
                root.draw(&Rectangle::new(swatch, COLOURS[i % COLOURS.len()].filled()))?;
            } else {
                let line = [(x, y), (x + 16, y)];
                root.draw(&PathElement::new(line, REFERENCE.stroke_width(2)))?;
            }
            root.draw(&Text::new(label.as_str(), (x + 22, y), font.clone()))?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::count;
    use super::*;

    #[test]
    fn bars_whiskers_reference_and_legend_land_in_their_own_strips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.png");
        let bar = |v: f64| {
            Some(Bar {
                value: v,
                lo: v - 0.05,
                hi: v + 0.05,
            })
        };
        let series = ["random init", "DINO", "CLASP", "CLASP without PC-MoE"];
        let chart = BarChart {
            series: &series,
            reference: "image-blind level",
            panels: vec![
                Panel {
                    title: "Frozen-backbone probes".into(),
                    groups: vec![
                        Group {
                            name: "reid (mAP)".into(),
                            bars: vec![bar(0.1), bar(0.2), bar(0.3), None],
                            reference: Some(0.05),
                        },
                        Group {
                            name: "pose (AP)".into(),
                            bars: vec![bar(0.5); 4],
                            reference: None,
                        },
                    ],
                },
                Panel {
                    title: "Fine-tuning".into(),
                    groups: vec![],
                },
            ],
        };
        write_bar_chart(&path, &chart).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        let (w, h) = (img.width(), img.height());
        assert_eq!(w, 2 * GROUP.0 + 20);
        let panel_h = TITLE_H + GROUP.1;
        let legend_top = 2 * panel_h;
        let rgb = |c: RGBColor| [c.0, c.1, c.2];
        // Every series' colour inside the first panel; the fourth only in the pose group.
        for (i, c) in COLOURS[..4].iter().enumerate() {
            let in_panel = count(&img, (0, 0, w, panel_h), rgb(*c));
            assert!(in_panel > 200, "series {i}: {in_panel} pixels");
        }
        let reid_fourth = count(&img, (0, 0, GROUP.0 + 10, panel_h), rgb(COLOURS[3]));
        assert_eq!(reid_fourth, 0, "a missing bar draws nothing");
        // The reference line sits in the reid group only.
        assert!(count(&img, (0, 0, GROUP.0 + 10, panel_h), rgb(REFERENCE)) > 50);
        assert_eq!(
            count(&img, (GROUP.0 + 10, 0, w, panel_h), rgb(REFERENCE)),
            0
        );
        // The legend strip holds a swatch of each colour and nothing of the panels.
        for c in &COLOURS[..4] {
            assert!(count(&img, (0, legend_top, w, h), rgb(*c)) >= 100);
        }
        assert_eq!(count(&img, (0, panel_h, w, legend_top), rgb(COLOURS[1])), 0);
    }
}
