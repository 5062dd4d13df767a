//! PA-100K-style attribute tables: a CSV with the image name and PA-100K's 26 attributes (0/1) in
//! PA-100K's order. The official release is a MATLAB file (`annotation.mat` with `train_images_name`,
//! `train_label`, ... and `attributes`); write it as this table with, in Python:
//! `scipy.io.loadmat` → for each split, rows of `[name] + list(label)` under the header below.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

pub const ATTRIBUTES: [&str; 26] = [
    "Female",
    "AgeOver60",
    "Age18-60",
    "AgeLess18",
    "Front",
    "Side",
    "Back",
    "Hat",
    "Glasses",
    "HandBag",
    "ShoulderBag",
    "Backpack",
    "HoldObjectsInFront",
    "ShortSleeve",
    "LongSleeve",
    "UpperStride",
    "UpperLogo",
    "UpperPlaid",
    "UpperSplice",
    "LowerStripe",
    "LowerPattern",
    "LongCoat",
    "Trousers",
    "Shorts",
    "Skirt&Dress",
    "boots",
];

#[derive(Debug, Clone, PartialEq)]
pub struct AttributeRow {
    pub image: String,
    pub labels: [u8; 26],
}

pub fn header() -> String {
    format!("image,{}", ATTRIBUTES.join(","))
}

pub fn write(path: &Path, rows: &[AttributeRow]) -> Result<()> {
    let mut out = header();
    out.push('\n');
    for r in rows {
        out.push_str(&r.image);
        for l in r.labels {
            out.push(',');
            out.push(char::from(b'0' + l));
        }
        out.push('\n');
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

/// Reads a table; a wrong header or value is an error naming the file and line.
pub fn read(path: &Path) -> Result<Vec<AttributeRow>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let head = lines.next().unwrap_or_default();
    if head.trim() != header() {
        bail!(
            "{}:1: header is not `image,` + PA-100K's 26 attribute names in order",
            path.display()
        );
    }
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != 27 {
            bail!(
                "{}:{}: {} fields, expected 27",
                path.display(),
                i + 2,
                fields.len()
            );
        }
        let mut labels = [0u8; 26];
        for (k, f) in fields[1..].iter().enumerate() {
            labels[k] = match f.trim() {
                "0" => 0,
                "1" => 1,
                other => bail!(
                    "{}:{}: attribute `{}` is `{other}`, expected 0 or 1",
                    path.display(),
                    i + 2,
                    ATTRIBUTES[k]
                ),
            };
        }
        rows.push(AttributeRow {
            image: fields[0].to_string(),
            labels,
        });
    }
    Ok(rows)
}

/// Where a row's image lives: names are relative to the table's `images/` folder.
pub fn image_path(table: &Path, row: &AttributeRow) -> PathBuf {
    table
        .parent()
        .unwrap_or(Path::new("."))
        .join("images")
        .join(&row.image)
}
