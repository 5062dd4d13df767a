//! MSMT17's list files: `list_train.txt`, `list_val.txt`, `list_query.txt`, `list_gallery.txt`,
//! each line `RELATIVE/PATH.jpg PID`, images under `train/` or `test/`, the camera the third field
//! of the file name (`0000_000_01_0303morning_0015_0.jpg` → camera 1).

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::market1501::ReidItem;

pub fn read_list(list: &Path, images: &Path) -> Result<Vec<ReidItem>> {
    let text =
        std::fs::read_to_string(list).with_context(|| format!("reading {}", list.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let at = || format!("{}:{}", list.display(), i + 1);
        let (rel, pid) = line
            .split_once(char::is_whitespace)
            .with_context(|| format!("{}: expected `PATH PID`, got `{line}`", at()))?;
        let pid: i32 = pid
            .trim()
            .parse()
            .with_context(|| format!("{}: person id `{}` is not a number", at(), pid.trim()))?;
        let name = Path::new(rel)
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{}: no file name in `{rel}`", at()))?;
        let cam: u32 = match name.split('_').nth(2).map(str::parse) {
            Some(Ok(c)) => c,
            _ => bail!(
                "{}: cannot read the camera from `{name}` (third `_` field)",
                at()
            ),
        };
        out.push(ReidItem {
            path: images.join(rel),
            pid,
            cam,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lines_and_names_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("list_train.txt");
        std::fs::write(
            &list,
            "0000/0000_000_01_0303morning_0015_0.jpg 0\n0001/0001_003_12_0303noon_0101_1.jpg 1\n",
        )
        .unwrap();
        let items = read_list(&list, &dir.path().join("train")).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!((items[1].pid, items[1].cam), (1, 12));
        std::fs::write(&list, "0000/0000_000_01_x.jpg zero\n").unwrap();
        let err = format!("{:#}", read_list(&list, dir.path()).unwrap_err());
        assert!(
            err.contains("list_train.txt:1") && err.contains("zero"),
            "{err}"
        );
    }
}
