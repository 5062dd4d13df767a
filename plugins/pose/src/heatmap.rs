//! Keypoints ↔ heatmaps. A keypoint at normalised crop position (u, v) sits at heatmap position
//! (u·W − ½, v·H − ½) in pixel-centre coordinates (heatmap pixel j covers u ∈ [j/W, (j+1)/W)).
//! Targets are Gaussians of `sigma` heatmap pixels around that position; decoding takes the
//! maximum and moves it a quarter pixel toward the higher neighbour, as SimpleBaseline, HRNet and
//! MMPose's default decoder do.

/// The target heatmaps (`[K, h, w]`, row-major) and per-keypoint weights for keypoints
/// `(u, v, visibility)`: weight 0 for unlabelled keypoints and those outside the crop.
pub fn encode(keypoints: &[[f32; 3]], [h, w]: [usize; 2], sigma: f32) -> (Vec<f32>, Vec<f32>) {
    let plane = h * w;
    let mut maps = vec![0f32; keypoints.len() * plane];
    let mut weights = vec![0f32; keypoints.len()];
    let radius = (3.0 * sigma).ceil() as i64;
    for (k, &[u, v, vis]) in keypoints.iter().enumerate() {
        if vis <= 0.0 || !(0.0..1.0).contains(&u) || !(0.0..1.0).contains(&v) {
            continue;
        }
        weights[k] = 1.0;
        let (mx, my) = (u * w as f32 - 0.5, v * h as f32 - 0.5);
        let (cx, cy) = (mx.round() as i64, my.round() as i64);
        let map = &mut maps[k * plane..(k + 1) * plane];
        for y in (cy - radius).max(0)..=(cy + radius).min(h as i64 - 1) {
            for x in (cx - radius).max(0)..=(cx + radius).min(w as i64 - 1) {
                let d2 = (x as f32 - mx).powi(2) + (y as f32 - my).powi(2);
                map[y as usize * w + x as usize] = (-d2 / (2.0 * sigma * sigma)).exp();
            }
        }
    }
    (maps, weights)
}

/// `(u, v, maxval)` per heatmap of `maps` (`[K, h, w]`).
pub fn decode(maps: &[f32], [h, w]: [usize; 2]) -> Vec<[f32; 3]> {
    maps.chunks(h * w)
        .map(|m| {
            let (best, maxval) =
                m.iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |acc, (i, v)| {
                        if *v > acc.1 {
                            (i, *v)
                        } else {
                            acc
                        }
                    });
            let (py, px) = (best / w, best % w);
            let (mut x, mut y) = (px as f32, py as f32);
            // The quarter-pixel shift toward the higher neighbour, away from the border.
            if px > 0 && px + 1 < w {
                x += 0.25 * (m[py * w + px + 1] - m[py * w + px - 1]).signum_or_zero();
            }
            if py > 0 && py + 1 < h {
                y += 0.25 * (m[(py + 1) * w + px] - m[(py - 1) * w + px]).signum_or_zero();
            }
            [(x + 0.5) / w as f32, (y + 0.5) / h as f32, maxval]
        })
        .collect()
}

trait SignumOrZero {
    fn signum_or_zero(self) -> f32;
}

impl SignumOrZero for f32 {
    /// numpy's `np.sign`: 0 for 0.
    fn signum_or_zero(self) -> f32 {
        if self > 0.0 {
            1.0
        } else if self < 0.0 {
            -1.0
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gaussian_decodes_to_its_keypoint_within_a_quarter_pixel() {
        let size = [32, 16];
        let kps = [
            [0.31, 0.62, 2.0],
            [0.5, 0.5, 0.0],
            [1.2, 0.5, 1.0],
            [0.9, 0.05, 1.0],
        ];
        let (maps, weights) = encode(&kps, size, 2.0);
        assert_eq!(
            weights,
            vec![1.0, 0.0, 0.0, 1.0],
            "unlabelled and outside weigh 0"
        );
        let out = decode(&maps, size);
        for k in [0, 3] {
            let (du, dv) = (
                (out[k][0] - kps[k][0]) * 16.0,
                (out[k][1] - kps[k][1]) * 32.0,
            );
            assert!(
                du.abs() <= 0.25 + 1e-4 && dv.abs() <= 0.25 + 1e-4,
                "{k}: {du} {dv}"
            );
            assert!(out[k][2] > 0.8);
        }
        // The peak at its pixel centre is exactly 1 and decodes to that centre.
        let (maps, _) = encode(&[[4.5 / 16.0, 7.5 / 32.0, 1.0]], size, 2.0);
        assert_eq!(maps[7 * 16 + 4], 1.0);
        assert_eq!(decode(&maps, size)[0], [4.5 / 16.0, 7.5 / 32.0, 1.0]);
    }

    #[test]
    fn the_shift_follows_the_higher_neighbour() {
        // 1×5 map, peak at x = 2, right neighbour higher → x = 2.25.
        let m = [0.0, 0.2, 1.0, 0.5, 0.0];
        let [u, _, s] = decode(&m, [1, 5])[0];
        assert!((u - 2.75 / 5.0).abs() < 1e-6 && s == 1.0);
    }
}
