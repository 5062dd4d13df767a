//! Metrics of top-down predictions against their target records: COCO keypoint AP/AR (through
//! [`crate::coco_eval`], equal to pycocotools) over the split's persons, and PCK@0.2 normalised
//! by the person box's longer side (MMPose's `PCKAccuracy(norm_item="bbox")`).

use std::collections::{BTreeMap, BTreeSet};

use clasp_sdk::{fail, Record, Result};

use crate::coco_data::Target;
use crate::coco_eval::{evaluate, Detection, GroundTruth, ImageInfo, KeypointStats, Person};
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

/// One person scored: the ground truth and the detection in COCO's image coordinates, and its
/// PCK counts. The metrics of a split follow from its rows ([`metrics_of_rows`]), so a bootstrap
/// can resample rows.
#[derive(Debug, Clone, PartialEq)]
pub struct PoseRow {
    pub person: Person,
    /// 17 × (x, y, confidence) in image pixels.
    pub keypoints: Vec<f64>,
    pub score: f64,
    pub pck_correct: usize,
    pub pck_labelled: usize,
}

/// Values of a row: image id, annotation id, the 51 ground-truth values, box, area, labelled
/// keypoints, crowd flag, the 51 detected values, score, PCK counts.
pub const ROW_LEN: usize = 2 + 3 * COUNT + 4 + 3 + 3 * COUNT + 3;

impl PoseRow {
    pub fn to_values(&self) -> Vec<f64> {
        let p = &self.person;
        let mut v = Vec::with_capacity(ROW_LEN);
        v.extend([p.image_id as f64, p.id as f64]);
        v.extend(&p.keypoints);
        v.extend(p.bbox);
        v.extend([p.area, p.num_keypoints as f64, p.iscrowd as f64]);
        v.extend(&self.keypoints);
        v.extend([
            self.score,
            self.pck_correct as f64,
            self.pck_labelled as f64,
        ]);
        v
    }

    pub fn from_values(v: &[f64]) -> Result<Self> {
        if v.len() != ROW_LEN {
            fail!("a pose row of {} values, expected {ROW_LEN}", v.len());
        }
        let kp = 3 * COUNT;
        let at = 2 + kp;
        let det = at + 7;
        Ok(Self {
            person: Person {
                image_id: v[0] as i64,
                id: v[1] as i64,
                keypoints: v[2..at].to_vec(),
                bbox: [v[at], v[at + 1], v[at + 2], v[at + 3]],
                area: v[at + 4],
                num_keypoints: v[at + 5] as usize,
                iscrowd: v[at + 6] as u8,
            },
            keypoints: v[det..det + kp].to_vec(),
            score: v[det + kp],
            pck_correct: v[det + kp + 1] as usize,
            pck_labelled: v[det + kp + 2] as usize,
        })
    }
}

/// A row per prediction against its target (paired).
pub fn pose_rows(
    predictions: &[Record],
    targets: &[Record],
    score_threshold: f32,
    pck_threshold: f64,
) -> Result<Vec<PoseRow>> {
    let mut rows = Vec::with_capacity(targets.len());
    for (p, t) in predictions.iter().zip(targets) {
        let target = Target::parse(t)?;
        let kps = predicted(p)?;
        let mut keypoints = Vec::with_capacity(3 * COUNT);
        let (mut correct, mut labelled) = (0usize, 0usize);
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
        rows.push(PoseRow {
            person: target.person(),
            keypoints,
            score: instance_score(&kps, score_threshold),
            pck_correct: correct,
            pck_labelled: labelled,
        });
    }
    Ok(rows)
}

/// COCO AP/AR and PCK of `rows`. A row that appears again (a bootstrap resample) is another
/// person in another image: each occurrence gets an image id of its own, so repeats neither
/// merge into one image nor change how the others match.
pub fn metrics_of_rows(rows: &[PoseRow]) -> Result<PoseMetrics> {
    // (original image id, occurrence of this person) → image id, in the original images' order.
    let mut seen: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    let keys: Vec<(i64, i64)> = rows
        .iter()
        .map(|r| {
            let k = seen.entry((r.person.image_id, r.person.id)).or_insert(0);
            *k += 1;
            (r.person.image_id, *k - 1)
        })
        .collect();
    let ids: BTreeMap<(i64, i64), i64> = keys
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .zip(1..)
        .collect();
    let mut gt = GroundTruth {
        images: ids.values().map(|id| ImageInfo { id: *id }).collect(),
        annotations: Vec::with_capacity(rows.len()),
    };
    let mut detections = Vec::with_capacity(rows.len());
    let (mut correct, mut labelled) = (0usize, 0usize);
    for (i, (r, key)) in rows.iter().zip(&keys).enumerate() {
        let image_id = ids[key];
        gt.annotations.push(Person {
            image_id,
            // Ids from 1: pycocotools reads 0 as "unmatched".
            id: i as i64 + 1,
            ..r.person.clone()
        });
        detections.push(Detection {
            image_id,
            keypoints: r.keypoints.clone(),
            score: r.score,
        });
        correct += r.pck_correct;
        labelled += r.pck_labelled;
    }
    Ok(PoseMetrics {
        coco: evaluate(&gt, &detections)?,
        pck: correct as f64 / labelled.max(1) as f64,
    })
}

/// COCO AP/AR and PCK@`pck_threshold` of `predictions` against `targets` (paired).
pub fn pose_metrics(
    predictions: &[Record],
    targets: &[Record],
    score_threshold: f32,
    pck_threshold: f64,
) -> Result<PoseMetrics> {
    metrics_of_rows(&pose_rows(
        predictions,
        targets,
        score_threshold,
        pck_threshold,
    )?)
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
