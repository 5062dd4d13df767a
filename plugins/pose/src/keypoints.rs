//! COCO's 17 person keypoints: names, left/right pairs, the skeleton drawn between them.

pub const NAMES: [&str; 17] = [
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

pub const COUNT: usize = NAMES.len();

/// Keypoints that trade places when the image is mirrored (0-based).
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

/// COCO's skeleton, 0-based.
pub const SKELETON: [(usize, usize); 19] = [
    (15, 13),
    (13, 11),
    (16, 14),
    (14, 12),
    (11, 12),
    (5, 11),
    (6, 12),
    (5, 6),
    (5, 7),
    (6, 8),
    (7, 9),
    (8, 10),
    (1, 2),
    (0, 1),
    (0, 2),
    (1, 3),
    (2, 4),
    (3, 5),
    (4, 6),
];

/// The keypoint that keypoint `i` becomes in the mirrored image.
pub fn mirrored(i: usize) -> usize {
    for (a, b) in FLIP_PAIRS {
        if i == a {
            return b;
        }
        if i == b {
            return a;
        }
    }
    i
}

/// Which side of the body keypoint `i` is on: −1 left, 1 right, 0 centre.
pub fn side(i: usize) -> i32 {
    match i {
        0 => 0,
        i if i % 2 == 1 => -1,
        _ => 1,
    }
}
