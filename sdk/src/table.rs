//! Tables of images and named columns, PA-100K's layout: `image,<column>,…` then one row per
//! image, 0/1 labels or (tables other systems wrote) probabilities in [0, 1]. Each row becomes a
//! record: the image (under an image folder) and its cells as `values`, in column order.

use std::path::Path;

use crate::{fail, Record, Result, Split};

pub struct Table {
    /// The column names after `image`.
    pub attributes: Vec<String>,
    pub rows: Vec<Record>,
}

impl Table {
    /// The position of column `name` among [`Table::attributes`] (a cell's index in `values`).
    pub fn column(&self, name: &str) -> Result<usize> {
        match self.attributes.iter().position(|a| a == name) {
            Some(i) => Ok(i),
            None => fail!("no column `{name}` among {:?}", self.attributes),
        }
    }

    /// Each row's class: the first of the columns `names` marked 1 in it (PA-100K's `Front`,
    /// `Side`, `Back`); a row with none marked is an error naming its image.
    pub fn marked_class(&self, names: &[&str]) -> Result<Vec<i64>> {
        let marks = self.select(names)?;
        self.rows
            .iter()
            .zip(marks)
            .map(|(r, m)| match m.iter().position(|v| *v > 0.5) {
                Some(c) => Ok(c as i64),
                None => fail!("{}: none of {names:?} is marked", r.image),
            })
            .collect()
    }

    /// Each row's cells of the columns `names`, in that order (nothing to look up in a table
    /// without rows).
    pub fn select(&self, names: &[&str]) -> Result<Vec<Vec<f32>>> {
        if self.rows.is_empty() {
            return Ok(Vec::new());
        }
        let columns: Vec<usize> = names
            .iter()
            .map(|n| self.column(n))
            .collect::<Result<_>>()?;
        Ok(self
            .rows
            .iter()
            .map(|r| columns.iter().map(|c| r.values[*c]).collect())
            .collect())
    }
}

/// What a table's cells hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cells {
    /// Ground truth: 0 or 1.
    Labels,
    /// Predictions: probabilities in [0, 1].
    Probabilities,
}

/// Reads the label table of `split`; a validation table that does not exist is an empty split
/// (the host then has no validation split to choose epochs on).
pub fn read_split(table: &Path, images_dir: &Path, split: Split) -> Result<Table> {
    if split == Split::Val && !table.exists() {
        return Ok(Table {
            attributes: Vec::new(),
            rows: Vec::new(),
        });
    }
    read(table, images_dir)
}

/// Reads the label table `table`; images are named relative to `images_dir`.
pub fn read(table: &Path, images_dir: &Path) -> Result<Table> {
    read_cells(table, images_dir, Cells::Labels)
}

/// Reads `table` whose cells are `cells`; images are named relative to `images_dir`.
pub fn read_cells(table: &Path, images_dir: &Path, cells: Cells) -> Result<Table> {
    let text = match std::fs::read_to_string(table) {
        Ok(t) => t,
        Err(e) => fail!("reading {}: {e}", table.display()),
    };
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    if header.len() < 2 || header[0] != "image" {
        fail!(
            "{}:1: header must be `image,<attribute>,…`",
            table.display()
        );
    }
    let attributes = header[1..].to_vec();
    let mut rows = Vec::new();
    // Image → its line: a second row for one image would silently replace the first.
    let mut seen = std::collections::HashMap::new();
    for (i, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != header.len() {
            fail!(
                "{}:{}: {} fields, expected {}",
                table.display(),
                i + 2,
                fields.len(),
                header.len()
            );
        }
        if let Some(first) = seen.insert(fields[0].to_string(), i + 2) {
            fail!(
                "{}:{}: image `{}` already has a row (line {first})",
                table.display(),
                i + 2,
                fields[0]
            );
        }
        let mut values = Vec::with_capacity(attributes.len());
        for (k, f) in fields[1..].iter().enumerate() {
            let v = match (cells, *f) {
                (Cells::Labels, "0") => Some(0.0),
                (Cells::Labels, "1") => Some(1.0),
                (Cells::Labels, _) => None,
                (Cells::Probabilities, f) => {
                    f.parse::<f32>().ok().filter(|p| (0.0..=1.0).contains(p))
                }
            };
            let Some(v) = v else {
                fail!(
                    "{}:{}: `{}` is `{f}`, expected {}",
                    table.display(),
                    i + 2,
                    attributes[k],
                    if cells == Cells::Labels {
                        "0 or 1"
                    } else {
                        "a probability in [0, 1]"
                    }
                );
            };
            values.push(v);
        }
        rows.push(Record {
            image: images_dir.join(fields[0]).display().to_string().into(),
            values: values.into(),
            ..Default::default()
        });
    }
    Ok(Table { attributes, rows })
}
