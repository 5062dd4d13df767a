//! Metrics of top-down predictions against their target records: COCO keypoint AP/AR (through
//! [`crate::coco_eval`], equal to pycocotools) over the split's persons, and PCK@0.2 normalised
//! by the person box's longer side (MMPose's `PCKAccuracy(norm_item="bbox")`).

use std::collections::BTreeSet;

use clasp_sdk::{fail, Record, Result};

use crate::coco_data::Target;
use crate::coco_eval::{evaluate, Detection, GroundTruth, ImageInfo, KeypointStats};
use crate::keypoints::COUNT;

/// A prediction's `(u, v, confidence)` per keypoint.
pub fn predicted(p: &Record) -> Result<Vec<[f32; 3]>> {
    if p.values.len() != 3 * COUNT {
        fail!(
            "prediction for {}: {} values, expected {} (17 × u, v, confidence)",
            p.image,
            p.values.len(),
            3 * COUNT
        );
    }
    Ok(p.values.chunks(3).map(|k| [k[0], k[1], k[2]]).collect())
}

/// MMPose's instance score for a person box of score 1: the mean confidence of the keypoints
/// above `threshold` (0 when none is).
pub fn instance_score(kps: &[[f32; 3]], threshold: f32) -> f64 {
    let kept: Vec<f64> = kps
        .iter()
        .filter(|k| k[2] > threshold)
        .map(|k| k[2] as f64)
        .collect();
    if kept.is_empty() {
        0.0
    } else {
        kept.iter().sum::<f64>() / kept.len() as f64
    }
}

pub struct PoseMetrics {
    pub coco: KeypointStats,
    pub pck: f64,
}

/// COCO AP/AR and PCK@`pck_threshold` of `predictions` against `targets` (paired).
pub fn pose_metrics(
    predictions: &[Record],
    targets: &[Record],
    score_threshold: f32,
    pck_threshold: f64,
) -> Result<PoseMetrics> {
    let mut gt = GroundTruth {
        images: Vec::new(),
        annotations: Vec::with_capacity(targets.len()),
    };
    let mut images = BTreeSet::new();
    let mut detections = Vec::with_capacity(predictions.len());
    let (mut correct, mut labelled) = (0usize, 0usize);
    for (p, t) in predictions.iter().zip(targets) {
        let target = Target::parse(t)?;
        let kps = predicted(p)?;
        let mut keypoints = Vec::with_capacity(3 * COUNT);
        let norm = target.bbox[2].max(target.bbox[3]).max(1e-6);
        for (k, gt_k) in kps.iter().zip(&target.keypoints) {
            let (x, y) = target.to_image(k[0], k[1]);
            keypoints.extend([x, y, k[2] as f64]);
            if gt_k[2] > 0.0 {
                let (gx, gy) = target.to_image(gt_k[0], gt_k[1]);
                labelled += 1;
                correct +=
                    (((x - gx).powi(2) + (y - gy).powi(2)).sqrt() / norm <= pck_threshold) as usize;
            }
        }
        detections.push(Detection {
            image_id: target.image_id,
            keypoints,
            score: instance_score(&kps, score_threshold),
        });
        images.insert(target.image_id);
        gt.annotations.push(target.person());
    }
    gt.images = images.into_iter().map(|id| ImageInfo { id }).collect();
    Ok(PoseMetrics {
        coco: evaluate(&gt, &detections)?,
        pck: correct as f64 / labelled.max(1) as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_scores_average_the_confident_keypoints() {
        let kps = [[0.0, 0.0, 0.9], [0.0, 0.0, 0.1], [0.0, 0.0, 0.5]];
        assert!((instance_score(&kps, 0.2) - 0.7).abs() < 1e-6);
        assert_eq!(instance_score(&kps[1..2], 0.2), 0.0);
    }
}
