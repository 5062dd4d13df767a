//! COCO keypoint evaluation, step for step as pycocotools' `COCOeval` with `iouType="keypoints"`:
//! OKS with COCO's 17 sigmas, greedy matching per image by descending score, precision at 101
//! recall points over OKS thresholds .50:.05:.95, areas all / medium / large, 20 detections per
//! image. Ground truth is a `person_keypoints_*.json`; detections are COCO results
//! (`image_id`, `keypoints`, `score`).

use std::collections::BTreeMap;

use clasp_sdk::{fail, Result};
use serde::Deserialize;

/// COCO's per-keypoint OKS constants ×10, as pycocotools writes them (it divides by 10).
pub const SIGMAS_X10: [f64; 17] = [
    0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89,
    0.89,
];
const MAX_DETS: usize = 20;
const AREAS: [(f64, f64); 3] = [(0.0, 1e10), (32.0 * 32.0, 96.0 * 96.0), (96.0 * 96.0, 1e10)];
const RECALL_POINTS: usize = 101;
/// numpy's `np.spacing(1)`.
const EPS: f64 = f64::EPSILON;

#[derive(Debug, Clone, Deserialize)]
pub struct GroundTruth {
    pub images: Vec<ImageInfo>,
    pub annotations: Vec<Person>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ImageInfo {
    pub id: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Person {
    pub id: i64,
    pub image_id: i64,
    pub keypoints: Vec<f64>,
    pub num_keypoints: usize,
    pub area: f64,
    pub bbox: [f64; 4],
    #[serde(default)]
    pub iscrowd: u8,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Detection {
    pub image_id: i64,
    pub keypoints: Vec<f64>,
    pub score: f64,
}

/// pycocotools' ten keypoint statistics, in `COCOeval.stats` order.
#[derive(Debug, Clone, PartialEq)]
pub struct KeypointStats {
    pub ap: f64,
    pub ap50: f64,
    pub ap75: f64,
    pub ap_medium: f64,
    pub ap_large: f64,
    pub ar: f64,
    pub ar50: f64,
    pub ar75: f64,
    pub ar_medium: f64,
    pub ar_large: f64,
}

impl KeypointStats {
    pub fn as_array(&self) -> [f64; 10] {
        [
            self.ap,
            self.ap50,
            self.ap75,
            self.ap_medium,
            self.ap_large,
            self.ar,
            self.ar50,
            self.ar75,
            self.ar_medium,
            self.ar_large,
        ]
    }
}

/// `np.linspace(start, stop, n)` bit for bit: `i * ((stop - start) / (n - 1)) + start`, the last
/// value set to `stop` (thresholds are compared with `<`, so the last bits matter).
fn linspace(start: f64, stop: f64, n: usize) -> Vec<f64> {
    let step = (stop - start) / (n - 1) as f64;
    let mut v: Vec<f64> = (0..n).map(|i| i as f64 * step + start).collect();
    v[n - 1] = stop;
    v
}

fn thresholds() -> Vec<f64> {
    linspace(0.5, 0.95, 10)
}

fn recall_points() -> Vec<f64> {
    linspace(0.0, 1.0, RECALL_POINTS)
}

/// A detection as loadRes prepares it: its area is the extent of its keypoints.
struct Det<'a> {
    id: usize,
    d: &'a Detection,
    area: f64,
}

/// OKS between every detection (rows, sorted) and ground-truth person (columns) of one image.
fn oks(dets: &[Det], gts: &[&Person]) -> Vec<Vec<f64>> {
    let vars: Vec<f64> = SIGMAS_X10
        .iter()
        .map(|s| (s / 10.0 * 2.0).powi(2))
        .collect();
    dets.iter()
        .map(|det| {
            gts.iter()
                .map(|g| {
                    let visible: Vec<bool> = g.keypoints.chunks(3).map(|k| k[2] > 0.0).collect();
                    let k1 = visible.iter().filter(|v| **v).count();
                    let [bx, by, bw, bh] = g.bbox;
                    let (x0, x1, y0, y1) = (bx - bw, bx + bw * 2.0, by - bh, by + bh * 2.0);
                    let mut sum = 0.0;
                    let mut count = 0usize;
                    for (k, (gk, dk)) in g
                        .keypoints
                        .chunks(3)
                        .zip(det.d.keypoints.chunks(3))
                        .enumerate()
                    {
                        let (dx, dy) = if k1 > 0 {
                            (dk[0] - gk[0], dk[1] - gk[1])
                        } else {
                            // No labelled keypoint: distance to a box twice the person's size.
                            (
                                (x0 - dk[0]).max(0.0) + (dk[0] - x1).max(0.0),
                                (y0 - dk[1]).max(0.0) + (dk[1] - y1).max(0.0),
                            )
                        };
                        if k1 > 0 && !visible[k] {
                            continue;
                        }
                        let e = (dx * dx + dy * dy) / vars[k] / (g.area + EPS) / 2.0;
                        sum += (-e).exp();
                        count += 1;
                    }
                    sum / count as f64
                })
                .collect()
        })
        .collect()
}

/// What `evaluateImg` keeps for one image, area range and threshold set.
struct ImageEval {
    /// Per threshold, per detection (score order): matched?
    dt_matched: Vec<Vec<bool>>,
    dt_ignored: Vec<Vec<bool>>,
    dt_scores: Vec<f64>,
    gt_ignored: Vec<bool>,
}

fn evaluate_image(
    dets: &[Det],
    gts: &[&Person],
    ious: &[Vec<f64>],
    (lo, hi): (f64, f64),
    thrs: &[f64],
) -> Option<ImageEval> {
    if gts.is_empty() && dets.is_empty() {
        return None;
    }
    let ignore = |g: &Person| g.iscrowd != 0 || g.num_keypoints == 0 || g.area < lo || g.area > hi;
    // Not-ignored ground truth first (a stable sort, as mergesort).
    let mut gind: Vec<usize> = (0..gts.len()).collect();
    gind.sort_by_key(|&i| ignore(gts[i]) as u8);
    let gt_ig: Vec<bool> = gind.iter().map(|&i| ignore(gts[i])).collect();
    let crowd: Vec<bool> = gind.iter().map(|&i| gts[i].iscrowd != 0).collect();
    let (t, g, d) = (thrs.len(), gts.len(), dets.len());
    let mut gtm = vec![vec![0usize; g]; t];
    // Matched ground-truth id per detection; 0 is "unmatched", as in pycocotools.
    let mut dtm = vec![vec![0i64; d]; t];
    let mut dt_ig = vec![vec![false; d]; t];
    if !ious.is_empty() {
        for (ti, thr) in thrs.iter().enumerate() {
            for (di, det) in dets.iter().enumerate() {
                let mut best = thr.min(1.0 - 1e-10);
                let mut m: Option<usize> = None;
                for (gi, &orig) in gind.iter().enumerate() {
                    if gtm[ti][gi] > 0 && !crowd[gi] {
                        continue;
                    }
                    if let Some(mm) = m {
                        if !gt_ig[mm] && gt_ig[gi] {
                            break;
                        }
                    }
                    let iou = ious[di][orig];
                    if iou < best {
                        continue;
                    }
                    best = iou;
                    m = Some(gi);
                }
                let Some(m) = m else { continue };
                dt_ig[ti][di] = gt_ig[m];
                dtm[ti][di] = gts[gind[m]].id;
                gtm[ti][m] = det.id;
            }
        }
    }
    // Unmatched detections outside the area range are ignored.
    for ti in 0..t {
        for (di, det) in dets.iter().enumerate() {
            if dtm[ti][di] == 0 && (det.area < lo || det.area > hi) {
                dt_ig[ti][di] = true;
            }
        }
    }
    Some(ImageEval {
        dt_matched: dtm
            .into_iter()
            .map(|row| row.into_iter().map(|x| x != 0).collect())
            .collect(),
        dt_ignored: dt_ig,
        dt_scores: dets.iter().map(|d| d.d.score).collect(),
        gt_ignored: gt_ig,
    })
}

/// Precision at the recall points (101) and final recall for one threshold, from detections of
/// every image in descending score order.
fn precision_recall(
    matched: &[bool],
    ignored: &[bool],
    num_gt: usize,
    recall_pts: &[f64],
) -> (Vec<f64>, f64) {
    let (mut tp, mut fp) = (0.0f64, 0.0f64);
    let mut rc = Vec::new();
    let mut pr = Vec::new();
    for (m, ig) in matched.iter().zip(ignored) {
        if *ig {
            continue;
        }
        if *m {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        rc.push(tp / num_gt as f64);
        pr.push(tp / (fp + tp + EPS));
    }
    let recall = rc.last().copied().unwrap_or(0.0);
    for i in (1..pr.len()).rev() {
        if pr[i] > pr[i - 1] {
            pr[i - 1] = pr[i];
        }
    }
    // np.searchsorted(rc, recThrs, side="left"); points past the curve keep precision 0.
    let q = recall_pts
        .iter()
        .map(|r| {
            let i = rc.partition_point(|x| x < r);
            pr.get(i).copied().unwrap_or(0.0)
        })
        .collect();
    (q, recall)
}

/// The mean over the entries that exist (pycocotools' `-1` marks the others); -1 when none do.
fn mean_present(values: &[f64]) -> f64 {
    let present: Vec<f64> = values.iter().copied().filter(|v| *v > -1.0).collect();
    if present.is_empty() {
        -1.0
    } else {
        present.iter().sum::<f64>() / present.len() as f64
    }
}

/// COCO keypoint AP/AR of `detections` against `gt`.
pub fn evaluate(gt: &GroundTruth, detections: &[Detection]) -> Result<KeypointStats> {
    let mut image_ids: Vec<i64> = gt.images.iter().map(|i| i.id).collect();
    image_ids.sort_unstable();
    image_ids.dedup();
    let mut gts: BTreeMap<i64, Vec<&Person>> = BTreeMap::new();
    for a in &gt.annotations {
        if a.keypoints.len() != 51 {
            fail!(
                "annotation {}: {} keypoint values, expected 51",
                a.id,
                a.keypoints.len()
            );
        }
        gts.entry(a.image_id).or_default().push(a);
    }
    let mut dts: BTreeMap<i64, Vec<Det>> = BTreeMap::new();
    for (i, d) in detections.iter().enumerate() {
        if image_ids.binary_search(&d.image_id).is_err() {
            fail!(
                "result {i}: image_id {} is not in the ground truth",
                d.image_id
            );
        }
        if d.keypoints.len() != 51 {
            fail!(
                "result {i}: {} keypoint values, expected 51",
                d.keypoints.len()
            );
        }
        let xs = d.keypoints.chunks(3).map(|k| k[0]);
        let ys = d.keypoints.chunks(3).map(|k| k[1]);
        let (x0, x1) = (
            xs.clone().fold(f64::INFINITY, f64::min),
            xs.fold(f64::NEG_INFINITY, f64::max),
        );
        let (y0, y1) = (
            ys.clone().fold(f64::INFINITY, f64::min),
            ys.fold(f64::NEG_INFINITY, f64::max),
        );
        dts.entry(d.image_id).or_default().push(Det {
            id: i + 1,
            d,
            area: (x1 - x0) * (y1 - y0),
        });
    }
    let thrs = thresholds();
    let recall_pts = recall_points();
    // Per area range: per threshold, the precision curve and recall over all images.
    let mut precision = vec![vec![vec![-1.0; RECALL_POINTS]; thrs.len()]; AREAS.len()];
    let mut recall = vec![vec![-1.0; thrs.len()]; AREAS.len()];
    for (ai, range) in AREAS.iter().enumerate() {
        let mut evals = Vec::new();
        for id in &image_ids {
            let g: Vec<&Person> = gts.get(id).cloned().unwrap_or_default();
            let mut d: Vec<Det> = dts
                .get(id)
                .map(|v| {
                    v.iter()
                        .map(|x| Det {
                            id: x.id,
                            d: x.d,
                            area: x.area,
                        })
                        .collect()
                })
                .unwrap_or_default();
            // Descending score, stable (mergesort), at most 20 per image.
            d.sort_by(|a, b| b.d.score.total_cmp(&a.d.score));
            d.truncate(MAX_DETS);
            let ious = if g.is_empty() || d.is_empty() {
                vec![]
            } else {
                oks(&d, &g)
            };
            if let Some(e) = evaluate_image(&d, &g, &ious, *range, &thrs) {
                evals.push(e);
            }
        }
        let num_gt = evals
            .iter()
            .flat_map(|e| e.gt_ignored.iter())
            .filter(|ig| !**ig)
            .count();
        if num_gt == 0 {
            continue;
        }
        // Every image's detections, by descending score (stable across images, in image order).
        let mut order: Vec<(usize, usize)> = evals
            .iter()
            .enumerate()
            .flat_map(|(ei, e)| (0..e.dt_scores.len()).map(move |di| (ei, di)))
            .collect();
        order.sort_by(|a, b| evals[b.0].dt_scores[b.1].total_cmp(&evals[a.0].dt_scores[a.1]));
        for ti in 0..thrs.len() {
            let matched: Vec<bool> = order
                .iter()
                .map(|(e, d)| evals[*e].dt_matched[ti][*d])
                .collect();
            let ignored: Vec<bool> = order
                .iter()
                .map(|(e, d)| evals[*e].dt_ignored[ti][*d])
                .collect();
            let (q, r) = precision_recall(&matched, &ignored, num_gt, &recall_pts);
            precision[ai][ti] = q;
            recall[ai][ti] = r;
        }
    }
    let ap = |ai: usize, t: Option<usize>| {
        let rows: Vec<f64> = match t {
            Some(ti) => precision[ai][ti].clone(),
            None => precision[ai].concat(),
        };
        mean_present(&rows)
    };
    let ar = |ai: usize, t: Option<usize>| match t {
        Some(ti) => mean_present(&[recall[ai][ti]]),
        None => mean_present(&recall[ai]),
    };
    Ok(KeypointStats {
        ap: ap(0, None),
        ap50: ap(0, Some(0)),
        ap75: ap(0, Some(5)),
        ap_medium: ap(1, None),
        ap_large: ap(2, None),
        ar: ar(0, None),
        ar50: ar(0, Some(0)),
        ar75: ar(0, Some(5)),
        ar_medium: ar(1, None),
        ar_large: ar(2, None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(id: i64, image_id: i64, kps: &[(f64, f64)], area: f64) -> Person {
        let mut keypoints = Vec::new();
        for (x, y) in kps {
            keypoints.extend([*x, *y, 2.0]);
        }
        Person {
            id,
            image_id,
            keypoints,
            num_keypoints: kps.len(),
            area,
            bbox: [0.0, 0.0, 100.0, 100.0],
            iscrowd: 0,
        }
    }

    fn skeleton(dx: f64) -> Vec<(f64, f64)> {
        (0..17)
            .map(|k| (10.0 + 5.0 * k as f64 + dx, 20.0 + 3.0 * k as f64))
            .collect()
    }

    /// A perfect detection for one person and a missed second person: precision 1 up to recall
    /// 0.5, then 0 → AP = 51/101 at every threshold; recall 0.5.
    #[test]
    fn hand_computed_case() {
        let gt = GroundTruth {
            images: vec![ImageInfo { id: 1 }, ImageInfo { id: 2 }],
            annotations: vec![
                person(1, 1, &skeleton(0.0), 10000.0),
                person(2, 2, &skeleton(0.0), 10000.0),
            ],
        };
        let mut kps = Vec::new();
        for (x, y) in skeleton(0.0) {
            kps.extend([x, y, 1.0]);
        }
        let dets = vec![Detection {
            image_id: 1,
            keypoints: kps,
            score: 0.9,
        }];
        let s = evaluate(&gt, &dets).unwrap();
        assert!((s.ap - 51.0 / 101.0).abs() < 1e-12, "{s:?}");
        assert!((s.ar - 0.5).abs() < 1e-12);
        assert_eq!(s.ap_medium, -1.0, "no medium-sized person");
        let bad = vec![Detection {
            image_id: 9,
            keypoints: vec![0.0; 51],
            score: 0.5,
        }];
        assert!(evaluate(&gt, &bad).is_err());
    }
}
