//! Poses that never look at the image: the levels a pose model must beat. Both are medians of
//! the training persons' keypoints in crop coordinates, placed in each test person's crop:
//! - the median pose of every training person;
//! - the median pose of the training persons seen from the test person's view (front, back,
//!   facing left, facing right), the view read off the test person's own annotation — an
//!   image-blind predictor told one coarse fact, which shows how much of AP the view alone
//!   explains.

use clasp_sdk::{NamedPredictionSets, Record, Result};

use crate::coco_data::Target;
use crate::keypoints::COUNT;

/// How a person faces the camera, from the annotated shoulders (and nose).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum View {
    /// The person's left shoulder is on the image's right.
    Front,
    Back,
    /// Shoulders overlap: the nose says which way the person faces.
    FacingLeft,
    FacingRight,
}

/// Shoulder spread (of the crop's width) below which a person is seen from the side.
const SIDE_SPREAD: f32 = 0.05;

impl View {
    pub fn of(t: &Target) -> Option<Self> {
        let [nose, left, right] = [0, 5, 6].map(|k| t.keypoints[k]);
        if left[2] <= 0.0 || right[2] <= 0.0 {
            return None;
        }
        let spread = left[0] - right[0];
        Some(if spread > SIDE_SPREAD {
            View::Front
        } else if spread < -SIDE_SPREAD {
            View::Back
        } else if nose[2] > 0.0 && nose[0] < (left[0] + right[0]) / 2.0 {
            View::FacingLeft
        } else {
            View::FacingRight
        })
    }
}

/// Per keypoint, the median (u, v) of the persons in which it is labelled; (0.5, 0.5) when none.
fn median_pose<'a>(persons: impl Iterator<Item = &'a Target>) -> Vec<[f32; 2]> {
    let mut coords: Vec<[Vec<f32>; 2]> = vec![[Vec::new(), Vec::new()]; COUNT];
    for t in persons {
        for (c, k) in coords.iter_mut().zip(&t.keypoints) {
            if k[2] > 0.0 {
                c[0].push(k[0]);
                c[1].push(k[1]);
            }
        }
    }
    let median = |v: &mut Vec<f32>| {
        if v.is_empty() {
            return 0.5;
        }
        v.sort_by(f32::total_cmp);
        v[v.len() / 2]
    };
    coords
        .iter_mut()
        .map(|[u, v]| [median(u), median(v)])
        .collect()
}

/// A prediction record (17 × u, v, confidence 1) of `pose` for test record `t`.
fn prediction(t: &Record, pose: &[[f32; 2]]) -> Record {
    Record {
        image: t.image.clone(),
        values: pose.iter().flat_map(|[u, v]| [*u, *v, 1.0]).collect(),
        ..Default::default()
    }
}

/// The median pose, and the median pose of the test person's view, for every test record.
pub fn blind_poses(train: &[Record], test: &[Record]) -> Result<NamedPredictionSets> {
    let train: Vec<Target> = train.iter().map(Target::parse).collect::<Result<_>>()?;
    let all = median_pose(train.iter());
    let views = [View::Front, View::Back, View::FacingLeft, View::FacingRight];
    let by_view: Vec<(View, Vec<[f32; 2]>)> = views
        .iter()
        .map(|v| {
            let of_view: Vec<&Target> = train.iter().filter(|t| View::of(t) == Some(*v)).collect();
            let pose = if of_view.is_empty() {
                all.clone()
            } else {
                median_pose(of_view.into_iter())
            };
            (*v, pose)
        })
        .collect();
    let mut median = Vec::with_capacity(test.len());
    let mut view_aware = Vec::with_capacity(test.len());
    for r in test {
        let t = Target::parse(r)?;
        median.push(prediction(r, &all));
        let pose = View::of(&t)
            .and_then(|v| by_view.iter().find(|(w, _)| *w == v))
            .map_or(&all, |(_, p)| p);
        view_aware.push(prediction(r, pose));
    }
    Ok(vec![
        ("median pose".into(), median),
        ("median pose of the true view".into(), view_aware),
    ])
}
