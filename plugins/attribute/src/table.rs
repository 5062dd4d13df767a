//! The PA-100K-style table: `image,<26 attribute names>` then one 0/1 row per image.

use std::path::Path;

use clasp_sdk::{fail, Record, Result};

pub struct Table {
    pub attributes: Vec<String>,
    pub rows: Vec<Record>,
}

/// Reads `table`; images are named relative to `images_dir`.
pub fn read(table: &Path, images_dir: &Path) -> Result<Table> {
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
        let mut values = Vec::with_capacity(attributes.len());
        for (k, f) in fields[1..].iter().enumerate() {
            values.push(match *f {
                "0" => 0.0,
                "1" => 1.0,
                other => fail!(
                    "{}:{}: `{}` is `{other}`, expected 0 or 1",
                    table.display(),
                    i + 2,
                    attributes[k]
                ),
            });
        }
        rows.push(Record {
            image: images_dir.join(fields[0]).display().to_string().into(),
            values: values.into(),
            ..Default::default()
        });
    }
    Ok(Table { attributes, rows })
}
