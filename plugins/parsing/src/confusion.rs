//! Segmentation metrics over a confusion matrix accumulated across a whole dataset: pixel
//! accuracy, mean class accuracy and mIoU. Pixels labelled `ignore` (LIP: 255) are not counted.
//! Means run over the classes that occur (in the ground truth for accuracy, in ground truth or
//! prediction for IoU), as mmsegmentation's `nanmean` does; `per_class_iou` keeps every class
//! (NaN where a class never occurs).

use clasp_sdk::{fail, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct Confusion {
    classes: usize,
    ignore: Option<u8>,
    /// Row = ground truth, column = prediction; counts of pixels.
    counts: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SegmentationMetrics {
    pub pixel_accuracy: f64,
    pub mean_accuracy: f64,
    pub miou: f64,
    pub per_class_iou: Vec<f64>,
}

impl Confusion {
    pub fn new(classes: usize, ignore: Option<u8>) -> Self {
        Self {
            classes,
            ignore,
            counts: vec![0; classes * classes],
        }
    }

    /// Adds one label map and its prediction (same length, class ids).
    pub fn add(&mut self, truth: &[u8], prediction: &[u8]) -> Result<()> {
        if truth.len() != prediction.len() {
            fail!(
                "label map of {} pixels against a prediction of {}",
                truth.len(),
                prediction.len()
            );
        }
        let c = self.classes;
        for (t, p) in truth.iter().zip(prediction) {
            if Some(*t) == self.ignore {
                continue;
            }
            let (t, p) = (*t as usize, *p as usize);
            if t >= c || p >= c {
                fail!("class id {} outside 0..{c}", t.max(p));
            }
            self.counts[t * c + p] += 1;
        }
        Ok(())
    }

    /// The pixel counts, row = ground truth, column = prediction.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Adds the counts of another matrix of the same classes (one image's, say).
    pub fn add_counts(&mut self, counts: &[f64]) -> Result<()> {
        if counts.len() != self.counts.len() {
            fail!(
                "{} confusion counts, expected {} ({} classes squared)",
                counts.len(),
                self.counts.len(),
                self.classes
            );
        }
        for (c, v) in self.counts.iter_mut().zip(counts) {
            *c += *v as u64;
        }
        Ok(())
    }

    pub fn metrics(&self) -> SegmentationMetrics {
        let c = self.classes;
        let at = |t: usize, p: usize| self.counts[t * c + p] as f64;
        let tp: Vec<f64> = (0..c).map(|k| at(k, k)).collect();
        let truth: Vec<f64> = (0..c).map(|k| (0..c).map(|p| at(k, p)).sum()).collect();
        let predicted: Vec<f64> = (0..c).map(|k| (0..c).map(|t| at(t, k)).sum()).collect();
        let total: f64 = truth.iter().sum();
        let nanmean = |v: &[f64]| {
            let present: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
            present.iter().sum::<f64>() / present.len().max(1) as f64
        };
        let accuracy: Vec<f64> = (0..c)
            .map(|k| {
                if truth[k] > 0.0 {
                    tp[k] / truth[k]
                } else {
                    f64::NAN
                }
            })
            .collect();
        let iou: Vec<f64> = (0..c)
            .map(|k| {
                let union = truth[k] + predicted[k] - tp[k];
                if union > 0.0 {
                    tp[k] / union
                } else {
                    f64::NAN
                }
            })
            .collect();
        SegmentationMetrics {
            pixel_accuracy: tp.iter().sum::<f64>() / total.max(1.0),
            mean_accuracy: nanmean(&accuracy),
            miou: nanmean(&iou),
            per_class_iou: iou,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_case() {
        // Classes 0..3; class 2 never occurs; one ignored pixel.
        let truth = [0, 0, 1, 1, 255, 0];
        let pred = [0, 1, 1, 1, 2, 0];
        let mut c = Confusion::new(3, Some(255));
        c.add(&truth, &pred).unwrap();
        let m = c.metrics();
        // Pixels counted: 5; correct: 4.
        assert!((m.pixel_accuracy - 0.8).abs() < 1e-12);
        // Class 0: 2/3 correct; class 1: 2/2 → mean 5/6.
        assert!((m.mean_accuracy - 5.0 / 6.0).abs() < 1e-12);
        // IoU 0: 2/(3+2-2) = 2/3; IoU 1: 2/(2+3-2) = 2/3; class 2 absent.
        assert!((m.miou - 2.0 / 3.0).abs() < 1e-12);
        assert!(m.per_class_iou[2].is_nan());
        assert!(c.add(&[3], &[0]).is_err());
        assert!(c.add(&[0, 1], &[0]).is_err());
    }
}
