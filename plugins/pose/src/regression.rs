//! A regression head (DeepPose, Toshev & Szegedy 2014; MMPose's `RegressionHead`): the pooled
//! features through one linear layer to 17 (u, v) positions in the crop, trained with L1 on the
//! labelled keypoints inside it. It has no heatmap, so no grid to quantise to, and it reads the
//! whole person at once: on frozen features it learns which way a person faces and where
//! keypoints lie in a crop, which a small convolutional head over a few tokens cannot.

use clasp_sdk::{fail, FeatureMaps, Host, Init, Record, Result, Tensor};

use crate::coco_data::Target;
use crate::keypoints::COUNT;
use crate::settings::PoseSettings;

/// `[B, 17, 2]`: each keypoint's (u, v) in the crop.
pub fn positions_of<'h>(
    host: &'h Host,
    cfg: &PoseSettings,
    f: &FeatureMaps<'h>,
) -> Result<Tensor<'h>> {
    let pool = cfg.pool;
    let mut x = pool.apply(host, f)?;
    let b = x.shape()?[0];
    let mut width = pool.width(f.dim);
    let hidden = cfg.hidden;
    if hidden > 0 {
        x = x
            .linear(
                host.param("fc1.weight", &[hidden, width], Init::KaimingUniform)?,
                Some(host.param("fc1.bias", &[hidden], Init::Zeros)?),
            )?
            .relu()?;
        width = hidden;
    }
    x.linear(
        host.param("fc.weight", &[2 * COUNT, width], Init::TruncNormal(0.001))?,
        // The crop's centre: where a person's keypoints are before anything is learnt.
        Some(host.param("fc.bias", &[2 * COUNT], Init::Constant(0.5))?),
    )?
    .reshape(&[b, COUNT, 2])
}

/// Mean absolute error over the labelled keypoints inside their crops (in crop fractions).
pub fn loss<'h>(host: &'h Host, output: Tensor<'h>, targets: &[Record]) -> Result<Tensor<'h>> {
    let b = targets.len();
    let (mut positions, mut weights) = (Vec::with_capacity(2 * COUNT * b), Vec::new());
    for t in targets {
        for &[u, v, vis] in &Target::parse(t)?.keypoints {
            let inside = vis > 0.0 && (0.0..1.0).contains(&u) && (0.0..1.0).contains(&v);
            positions.extend([u, v]);
            weights.push(if inside { 1.0 } else { 0.0 });
        }
    }
    let labelled: f32 = weights.iter().sum();
    let target = host.constant(&[b, COUNT, 2], &positions)?;
    let weight = host.constant(&[b, COUNT, 1], &weights)?;
    output
        .sub(target)?
        .abs()?
        .mul(weight)?
        .reshape(&[b * COUNT * 2])?
        .sum(0, false)?
        .affine(1.0 / (2.0 * labelled.max(1.0)) as f64, 0.0)
}

/// Prediction records: 17 × (u, v, confidence 1) — a regression has no confidence of its own.
pub fn decode(output: Tensor<'_>) -> Result<Vec<Record>> {
    let (shape, data) = output.to_cpu()?;
    if shape.len() != 3 || shape[1] != COUNT || shape[2] != 2 {
        fail!("keypoint positions of shape {shape:?}, expected [B, {COUNT}, 2]");
    }
    Ok(data
        .chunks(2 * COUNT)
        .map(|person| Record {
            values: person
                .chunks(2)
                .flat_map(|uv| [uv[0], uv[1], 1.0])
                .collect::<Vec<f32>>()
                .into(),
            ..Default::default()
        })
        .collect())
}
