//! A heatmap of values in [0, 1]: one row per label, columns in groups (PC-MoE: rows are tasks,
//! groups are blocks, cells are experts), white for 0 to dark blue for 1, with a colour bar and
//! the data's own range in the title — near-uniform gates stay readable as numbers.

use std::path::Path;

use anyhow::{ensure, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{register_fonts, render, FONT};

const CELL: i32 = 22;
const GROUP_GAP: i32 = 8;
const TOP: i32 = 46;
const BAR_W: i32 = 14;

/// Rows of values, each `groups.len() × per_group` long (group-major).
pub struct Heatmap<'a> {
    pub title: &'a str,
    pub groups: Vec<String>,
    pub per_group: usize,
    pub rows: Vec<(String, Vec<f32>)>,
}

/// What a missing (non-finite) value is drawn as.
const MISSING: RGBColor = RGBColor(200, 80, 80);

/// White (0) to dark blue (1); red for a non-finite value.
pub fn colour(v: f32) -> RGBColor {
    if !v.is_finite() {
        return MISSING;
    }
    let v = v.clamp(0.0, 1.0);
    let mix = |a: f32, b: f32| (a + (b - a) * v).round() as u8;
    RGBColor(mix(255.0, 8.0), mix(255.0, 48.0), mix(255.0, 107.0))
}

/// Writes the heatmap; nothing when there are no rows.
pub fn write_heatmap(path: &Path, map: &Heatmap) -> Result<()> {
    if map.rows.is_empty() {
        return Ok(());
    }
    let cells = map.groups.len() * map.per_group;
    for (label, values) in &map.rows {
        ensure!(
            values.len() == cells,
            "heatmap row `{label}` has {} values for {cells} cells",
            values.len()
        );
    }
    register_fonts();
    let label_font = (FONT, 12).into_font();
    let mut left = 0;
    for (label, _) in &map.rows {
        left = left.max(label_font.box_size(label)?.0 as i32);
    }
    let left = left + 12;
    let group_w = map.per_group as i32 * CELL + GROUP_GAP;
    let grid_w = map.groups.len() as i32 * group_w;
    let width = (left + grid_w + 70).max(420);
    let height = TOP + map.rows.len() as i32 * CELL + 12;
    let values = map.rows.iter().flat_map(|(_, v)| v.iter().copied());
    let finite: Vec<f32> = values.clone().filter(|v| v.is_finite()).collect();
    let missing = values.count() - finite.len();
    let range = match finite.iter().copied().reduce(f32::min) {
        Some(lo) => {
            let hi = finite.iter().copied().fold(lo, f32::max);
            format!("range {lo:.3} to {hi:.3}")
        }
        None => "no finite value".to_string(),
    };
    let range = match missing {
        0 => range,
        n => format!("{range}; {n} non-finite in red"),
    };
    render(path, (width as u32, height as u32), |root| {
        let title = format!("{} ({range})", map.title);
        root.draw(&Text::new(title, (8, 6), (FONT, 14).into_font()))?;
        let centred = TextStyle::from(label_font.clone()).pos(Pos::new(HPos::Center, VPos::Bottom));
        for (g, name) in map.groups.iter().enumerate() {
            let x = left + g as i32 * group_w + map.per_group as i32 * CELL / 2;
            root.draw(&Text::new(name.as_str(), (x, TOP - 4), centred.clone()))?;
        }
        let row_label =
            TextStyle::from(label_font.clone()).pos(Pos::new(HPos::Right, VPos::Center));
        for (r, (label, values)) in map.rows.iter().enumerate() {
            let y = TOP + r as i32 * CELL;
            root.draw(&Text::new(
                label.as_str(),
                (left - 6, y + CELL / 2),
                row_label.clone(),
            ))?;
            for (i, v) in values.iter().enumerate() {
                let (g, e) = ((i / map.per_group) as i32, (i % map.per_group) as i32);
                let x = left + g * group_w + e * CELL;
                let cell = [(x + 1, y + 1), (x + CELL - 1, y + CELL - 1)];
                root.draw(&Rectangle::new(cell, colour(*v).filled()))?;
            }
        }
        // Colour bar: 0 at the bottom, 1 at the top.
        let (bar_x, bar_h) = (left + grid_w + 10, map.rows.len() as i32 * CELL);
        for k in 0..bar_h {
            let v = 1.0 - k as f32 / (bar_h - 1).max(1) as f32;
            let row = [(bar_x, TOP + k), (bar_x + BAR_W, TOP + k + 1)];
            root.draw(&Rectangle::new(row, colour(v).filled()))?;
        }
        let tick = TextStyle::from(label_font).pos(Pos::new(HPos::Left, VPos::Center));
        for (v, y) in [("1", TOP), ("0", TOP + bar_h)] {
            root.draw(&Text::new(v, (bar_x + BAR_W + 4, y), tick.clone()))?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::count;
    use super::*;

    #[test]
    fn cells_take_their_values_colour_and_a_short_row_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gates.png");
        let map = Heatmap {
            title: "gates",
            groups: vec!["b0".into(), "b1".into()],
            per_group: 2,
            rows: vec![
                ("reid".into(), vec![1.0, 0.0, 0.5, 0.5]),
                ("pose".into(), vec![0.0, 1.0, 0.25, 0.75]),
            ],
        };
        write_heatmap(&path, &map).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        let full = colour(1.0);
        assert!(
            count(
                &img,
                (0, 0, img.width(), img.height()),
                [full.0, full.1, full.2]
            ) >= 2 * 400
        );
        let half = colour(0.5);
        assert!(
            count(
                &img,
                (0, 0, img.width(), img.height()),
                [half.0, half.1, half.2]
            ) >= 2 * 400
        );
        let short = Heatmap {
            rows: vec![("reid".into(), vec![0.5; 3])],
            ..map
        };
        let e = write_heatmap(&path, &short).unwrap_err().to_string();
        assert!(e.contains("`reid` has 3 values for 4 cells"), "{e}");
    }
}
