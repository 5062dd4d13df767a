//! Scoring label maps another system wrote: a folder of predicted PNGs against a folder of
//! ground-truth PNGs, paired by file name, at the ground truth's own size.

use std::path::{Path, PathBuf};

use clasp_sdk::{fail, Result};

use crate::confusion::{Confusion, SegmentationMetrics};
use crate::lip::{read_label_png, CLASS_NAMES, IGNORE};

fn pngs(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| clasp_sdk::Error::data(format!("listing {}: {e}", dir.display())))?;
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")))
        .collect();
    out.sort();
    Ok(out)
}

/// The metrics of every ground-truth map in `gt_dir` against the map of the same name in
/// `pred_dir`; a missing, extra or differently sized prediction is an error naming the file.
pub fn score_label_dirs(pred_dir: &Path, gt_dir: &Path) -> Result<SegmentationMetrics> {
    let gts = pngs(gt_dir)?;
    if gts.is_empty() {
        fail!("{}: no PNG label maps", gt_dir.display());
    }
    let mut confusion = Confusion::new(CLASS_NAMES.len(), Some(IGNORE));
    for gt in &gts {
        let name = gt.file_name().expect("listed files have names");
        let pred = pred_dir.join(name);
        if !pred.is_file() {
            fail!("{}: no prediction for {}", pred_dir.display(), gt.display());
        }
        let (gw, gh, truth) = read_label_png(gt)?;
        let (pw, ph, predicted) = read_label_png(&pred)?;
        if (gw, gh) != (pw, ph) {
            fail!(
                "{} is {pw}×{ph} but its ground truth {} is {gw}×{gh}",
                pred.display(),
                gt.display()
            );
        }
        confusion
            .add(&truth, &predicted)
            .map_err(|e| clasp_sdk::Error::data(format!("{}: {}", pred.display(), e.message)))?;
    }
    for pred in pngs(pred_dir)? {
        let name = pred.file_name().expect("listed files have names");
        if !gt_dir.join(name).is_file() {
            fail!(
                "{} has no ground truth in {}",
                pred.display(),
                gt_dir.display()
            );
        }
    }
    Ok(confusion.metrics())
}
