//! LIP-style human parsing: `{split}_images/NAME.jpg`, `{split}_segmentations/NAME.png` (class id
//! per pixel), `{split}_id.txt` listing the names, `classes.txt` listing the class names by id.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

pub fn images_dir(root: &Path, split: &str) -> PathBuf {
    root.join(format!("{split}_images"))
}

pub fn labels_dir(root: &Path, split: &str) -> PathBuf {
    root.join(format!("{split}_segmentations"))
}

pub fn id_file(root: &Path, split: &str) -> PathBuf {
    root.join(format!("{split}_id.txt"))
}

/// An image and its label map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsingItem {
    pub image: PathBuf,
    pub labels: PathBuf,
}

/// Reads the id list of `split`; every listed name must have an image and a label map.
pub fn read_split(root: &Path, split: &str) -> Result<Vec<ParsingItem>> {
    let list = id_file(root, split);
    let text =
        std::fs::read_to_string(&list).with_context(|| format!("reading {}", list.display()))?;
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let name = line.trim();
        if name.is_empty() {
            continue;
        }
        let item = ParsingItem {
            image: images_dir(root, split).join(format!("{name}.jpg")),
            labels: labels_dir(root, split).join(format!("{name}.png")),
        };
        for p in [&item.image, &item.labels] {
            if !p.exists() {
                bail!(
                    "{}:{}: `{name}` has no {}",
                    list.display(),
                    i + 1,
                    p.display()
                );
            }
        }
        items.push(item);
    }
    Ok(items)
}

/// Reads a label PNG (8-bit grey or palette) as class ids.
pub fn read_labels(path: &Path) -> Result<(u32, u32, Vec<u8>)> {
    let img = crate::data::images::open_image(path)?.to_luma8();
    Ok((img.width(), img.height(), img.into_raw()))
}
