//! Market-1501-style folders: every image's identity and camera are in its file name,
//! `0001_c1s1_000151_01.jpg` (person 1, camera 1); `-1_c1…` is junk and `0000_c1…` a distractor.
//! MSMT17 and DukeMTMC-reID ship in (or convert to) the same naming.

use std::path::{Path, PathBuf};

use clasp_sdk::{fail, Result};

/// One image of a split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketImage {
    pub path: PathBuf,
    pub pid: i64,
    pub cam: i64,
}

/// Identity and camera from a file name such as `0001_c1s1_000151_01.jpg` or `-1_c3s2_…`.
pub fn parse_name(name: &str) -> Option<(i64, i64)> {
    let mut parts = name.split('_');
    let pid: i64 = parts.next()?.parse().ok()?;
    let cam_part = parts.next()?.strip_prefix('c')?;
    let digits: String = cam_part
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let cam: i64 = digits.parse().ok()?;
    Some((pid, cam))
}

fn is_image(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref(),
        Some("jpg" | "jpeg" | "png" | "bmp")
    )
}

/// The images of `dir`, sorted by file name. A name without an identity and camera is an error
/// that names the file: guessing would silently corrupt the evaluation.
pub fn list(dir: &Path) -> Result<Vec<MarketImage>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => fail!("{}: {e}", dir.display()),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = match entry {
            Ok(e) => e.path(),
            Err(e) => fail!("{}: {e}", dir.display()),
        };
        if !is_image(&path) {
            continue;
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let Some((pid, cam)) = parse_name(name) else {
            fail!(
                "{}: not a Market-1501 name (expected PID_cCAM…, e.g. 0001_c1s1_000151_01.jpg)",
                path.display()
            );
        };
        out.push(MarketImage { path, pid, cam });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::parse_name;

    #[test]
    fn names_give_identity_and_camera() {
        assert_eq!(parse_name("0001_c1s1_000151_01.jpg"), Some((1, 1)));
        assert_eq!(parse_name("-1_c3s2_000101_02.jpg"), Some((-1, 3)));
        assert_eq!(parse_name("0000_c6s1_000001_01.jpg"), Some((0, 6)));
        assert_eq!(parse_name("1500_c12_f003.jpg"), Some((1500, 12)));
        assert_eq!(parse_name("Thumbs.db"), None);
        assert_eq!(parse_name("0001_s1.jpg"), None);
    }
}
