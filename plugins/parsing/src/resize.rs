//! From low-resolution class scores to a label map at any size: bilinear interpolation of the
//! scores (as `F.interpolate(..., mode="bilinear", align_corners=False)` does before the argmax
//! in mmsegmentation), then the best class per pixel.

/// The argmax labels of `scores` (`[C, h, w]`, row-major) resized bilinearly to `out_h`×`out_w`.
pub fn upsampled_argmax(
    scores: &[f32],
    [c, h, w]: [usize; 3],
    [out_h, out_w]: [usize; 2],
) -> Vec<u8> {
    let axis = |n_out: usize, n_in: usize| -> Vec<(usize, usize, f32)> {
        let scale = n_in as f32 / n_out as f32;
        (0..n_out)
            .map(|i| {
                let f = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
                let i0 = (f.floor() as usize).min(n_in - 1);
                let i1 = (i0 + 1).min(n_in - 1);
                (i0, i1, f - i0 as f32)
            })
            .collect()
    };
    let (ys, xs) = (axis(out_h, h), axis(out_w, w));
    let plane = h * w;
    let mut out = vec![0u8; out_h * out_w];
    for (oy, &(y0, y1, ty)) in ys.iter().enumerate() {
        for (ox, &(x0, x1, tx)) in xs.iter().enumerate() {
            let (mut best, mut best_score) = (0usize, f32::NEG_INFINITY);
            for k in 0..c {
                let s = &scores[k * plane..(k + 1) * plane];
                let top = s[y0 * w + x0] + (s[y0 * w + x1] - s[y0 * w + x0]) * tx;
                let bottom = s[y1 * w + x0] + (s[y1 * w + x1] - s[y1 * w + x0]) * tx;
                let v = top + (bottom - top) * ty;
                if v > best_score {
                    (best, best_score) = (k, v);
                }
            }
            out[oy * out_w + ox] = best as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_the_plain_argmax_and_edges_interpolate() {
        // Two classes on a 1×2 grid: class 1 wins on the right.
        let scores = [1.0, 0.0, 0.0, 1.0];
        assert_eq!(upsampled_argmax(&scores, [2, 1, 2], [1, 2]), vec![0, 1]);
        // ×2: output x = 0.25, 0.75 → left; 1.25, 1.75 → right (the midpoint is a tie at 1.0).
        assert_eq!(
            upsampled_argmax(&scores, [2, 1, 2], [1, 4]),
            vec![0, 0, 1, 1]
        );
        // ×4 on a 1×2 grid puts source pixel centres at output x = 1.5 and 5.5.
        let wide = upsampled_argmax(&[0.0, 1.0, 0.5, 0.0], [2, 1, 2], [1, 8]);
        // score0 = x-interp of (0, 1), score1 of (0.5, 0): equal at t = 1/3.
        assert_eq!(wide, vec![1, 1, 1, 0, 0, 0, 0, 0]);
    }
}
