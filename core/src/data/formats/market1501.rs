//! Market-1501 / MSMT17-style ReID folders: `bounding_box_train/`, `bounding_box_test/`, `query/`,
//! files named `0001_c1s1_000151_01.jpg` (person id, camera, sequence, frame, detection).
//! Person id `-1` is junk and `0000` a distractor, as in Market-1501.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

pub const TRAIN_DIR: &str = "bounding_box_train";
pub const GALLERY_DIR: &str = "bounding_box_test";
pub const QUERY_DIR: &str = "query";
/// Validation identities in the same layout (Market-1501 has none; `clasp synth` writes one and
/// for a real set it is a held-out part of the training identities).
pub const VAL_QUERY_DIR: &str = "val/query";
pub const VAL_GALLERY_DIR: &str = "val/bounding_box_test";

/// The fields of a Market-1501 file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarketName {
    pub pid: i32,
    pub cam: u32,
    pub seq: u32,
    pub frame: u32,
    pub det: u32,
}

impl MarketName {
    pub fn file_name(&self) -> String {
        let pid = if self.pid < 0 {
            "-1".to_string()
        } else {
            format!("{:04}", self.pid)
        };
        format!(
            "{pid}_c{}s{}_{:06}_{:02}.jpg",
            self.cam, self.seq, self.frame, self.det
        )
    }

    /// Parses `0001_c1s1_000151_01.jpg` (or `-1_c3s2_...`).
    pub fn parse(name: &str) -> Result<Self> {
        let err = || format!("`{name}` is not a Market-1501 name like 0001_c1s1_000151_01.jpg");
        let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
        let parts: Vec<&str> = stem.split('_').collect();
        if parts.len() != 4 {
            bail!(err());
        }
        let pid: i32 = parts[0].parse().with_context(err)?;
        let cs = parts[1].strip_prefix('c').with_context(err)?;
        let (cam, seq) = cs.split_once('s').with_context(err)?;
        Ok(Self {
            pid,
            cam: cam.parse().with_context(err)?,
            seq: seq.parse().with_context(err)?,
            frame: parts[2].parse().with_context(err)?,
            det: parts[3].parse().with_context(err)?,
        })
    }
}

/// One ReID image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReidItem {
    pub path: PathBuf,
    pub pid: i32,
    pub cam: u32,
}

/// Lists a split folder (`root/bounding_box_train` etc.), sorted by file name.
pub fn read_split(root: &Path, split: &str) -> Result<Vec<ReidItem>> {
    let dir = root.join(split);
    let mut items = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.to_ascii_lowercase().ends_with(".jpg") {
            continue;
        }
        let m = MarketName::parse(name).with_context(|| format!("in {}", dir.display()))?;
        items.push(ReidItem {
            path,
            pid: m.pid,
            cam: m.cam,
        });
    }
    items.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for n in [
            "0001_c1s1_000151_01.jpg",
            "-1_c3s2_004500_02.jpg",
            "0000_c6s4_001234_07.jpg",
        ] {
            assert_eq!(MarketName::parse(n).unwrap().file_name(), n);
        }
        assert!(MarketName::parse("0001_c1_000151_01.jpg").is_err());
    }
}
