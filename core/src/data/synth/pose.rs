//! A 2-D skeleton with COCO's 17 keypoints, posed by joint angles and seen from a view.

use rand::Rng;
use serde::{Deserialize, Serialize};

/// COCO person keypoint names, in COCO's order.
pub const KEYPOINT_NAMES: [&str; 17] = [
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
];

/// COCO's skeleton (1-based keypoint indices, as in the JSON `categories`).
pub const SKELETON: [[u32; 2]; 19] = [
    [16, 14],
    [14, 12],
    [17, 15],
    [15, 13],
    [12, 13],
    [6, 12],
    [7, 13],
    [6, 7],
    [6, 8],
    [7, 9],
    [8, 10],
    [9, 11],
    [2, 3],
    [1, 2],
    [1, 3],
    [2, 4],
    [3, 5],
    [4, 6],
    [5, 7],
];

/// Index pairs that swap under a horizontal flip.
pub const FLIP_PAIRS: [(usize, usize); 8] = [
    (1, 2),
    (3, 4),
    (5, 6),
    (7, 8),
    (9, 10),
    (11, 12),
    (13, 14),
    (15, 16),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum View {
    Front,
    Back,
    /// Seen from the side; `facing_right` in the image.
    Side {
        facing_right: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    Standing,
    Walking,
    ArmsRaised,
    Carrying,
}

/// Joint angles in radians. Arms/legs: angle from straight down; positive swings the limb
/// outward (front/back views) or forward (side view). Bends fold the lower segment further.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pose {
    pub view: View,
    pub action: Action,
    pub shoulder: [f32; 2],
    pub elbow: [f32; 2],
    pub hip: [f32; 2],
    pub knee: [f32; 2],
}

impl Pose {
    pub fn sample<R: Rng>(rng: &mut R, holds_object: bool) -> Self {
        let view = match rng.gen_range(0..3) {
            0 => View::Front,
            1 => View::Back,
            _ => View::Side {
                facing_right: rng.gen_bool(0.5),
            },
        };
        let action = if holds_object {
            Action::Carrying
        } else {
            match rng.gen_range(0..10) {
                0..=3 => Action::Walking,
                4..=8 => Action::Standing,
                _ => Action::ArmsRaised,
            }
        };
        let j = |rng: &mut R, a: f32| rng.gen_range(-a..=a);
        let (shoulder, elbow, hip, knee) = match (action, view) {
            (Action::Walking, View::Side { .. }) => {
                let s = rng.gen_range(0.3..0.6);
                ([s, -s], [0.3, 0.1], [-s * 0.8, s * 0.8], [0.05, 0.5])
            }
            (Action::Walking, _) => {
                let s = rng.gen_range(0.05..0.15);
                ([s, s], [0.1, 0.1], [0.04, 0.1], [0.0, 0.15])
            }
            (Action::Standing, _) => (
                [0.12 + j(rng, 0.08), 0.12 + j(rng, 0.08)],
                [j(rng, 0.1).abs(), j(rng, 0.1).abs()],
                [0.06, 0.06],
                [0.0, 0.0],
            ),
            (Action::ArmsRaised, _) => {
                let a = rng.gen_range(2.2..2.9);
                (
                    [a, a - j(rng, 0.3).abs()],
                    [0.2, 0.3],
                    [0.08, 0.08],
                    [0.0, 0.0],
                )
            }
            (Action::Carrying, View::Side { .. }) => {
                ([0.9, 0.9], [0.8, 0.8], [0.0, 0.1], [0.0, 0.1])
            }
            (Action::Carrying, _) => ([0.25, 0.25], [-1.2, -1.2], [0.06, 0.06], [0.0, 0.0]),
        };
        Self {
            view,
            action,
            shoulder,
            elbow,
            hip,
            knee,
        }
    }
}
