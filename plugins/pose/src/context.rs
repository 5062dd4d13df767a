//! Global context for a heatmap head: the CLS token and the token's place in the crop, joined to
//! every patch token. A head of small convolutions sees a few tokens; which shoulder is the left
//! one depends on the whole person (front or back view), and where keypoints usually lie depends
//! on the position, which a translation-equivariant head cannot learn (CoordConv, Liu et al.
//! 2018). With frozen features nothing upstream can supply either.

use clasp_sdk::{FeatureMaps, Host, Result, Tensor};

/// `[B, 2·dim + 2, h, w]`: patches, the CLS broadcast over the grid, then x and y in [−1, 1] at
/// the token centres; and that channel count.
pub fn with_context<'h>(host: &'h Host, f: &FeatureMaps<'h>) -> Result<(Tensor<'h>, usize)> {
    let [b, d, h, w] = match f.patches.shape()?.as_slice() {
        &[b, d, h, w] => [b, d, h, w],
        other => clasp_sdk::fail!("patch map of shape {other:?}, expected [B, d, h, w]"),
    };
    let zeros = host.constant(&[b, 1, h, w], &vec![0.0; b * h * w])?;
    let cls = f.cls.reshape(&[b, d, 1, 1])?.add(zeros)?;
    let coords = host
        .constant(&[1, 2, h, w], &coordinates(h, w))?
        .add(zeros)?;
    Ok((host.concat(&[f.patches, cls, coords], 1)?, 2 * d + 2))
}

/// x then y planes (`[2, h, w]`, row-major) of the token centres, in [−1, 1].
fn coordinates(h: usize, w: usize) -> Vec<f32> {
    let centre = |i: usize, n: usize| 2.0 * (i as f32 + 0.5) / n as f32 - 1.0;
    let x = (0..h).flat_map(|_| (0..w).map(move |j| centre(j, w)));
    let y = (0..h).flat_map(|i| std::iter::repeat_n(centre(i, h), w));
    x.chain(y).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinates_are_token_centres_in_x_then_y_planes() {
        let c = coordinates(2, 4);
        assert_eq!(
            &c[..8],
            &[-0.75, -0.25, 0.25, 0.75, -0.75, -0.25, 0.25, 0.75]
        );
        assert_eq!(&c[8..], &[-0.5, -0.5, -0.5, -0.5, 0.5, 0.5, 0.5, 0.5]);
    }
}
