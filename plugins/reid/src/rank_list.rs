//! The rank-list picture: the query, then its closest gallery images in order, each framed green
//! when it shows the query's identity and red when not (grey when a file name carries no
//! identity). Gallery images of the query's identity from the query's camera are left out, as
//! the Market-1501 protocol (and torchreid's `visualize_ranked_results`) does.

use std::path::Path;

use clasp_sdk::draw::{self, image, BLACK, WHITE};
use clasp_sdk::{fail, Record, Result};
use image::{imageops::FilterType, Rgb, RgbImage};

use crate::market::parse_name;
use crate::ranking::{distance_matrix, Distance};

const CELL_W: u32 = 64;
const CELL_H: u32 = 128;
const BORDER: u32 = 4;
const GAP: u32 = 6;
const TEXT_H: u32 = 24;
const SAME: Rgb<u8> = Rgb([20, 180, 40]);
const OTHER: Rgb<u8> = Rgb([220, 30, 30]);
const UNKNOWN: Rgb<u8> = Rgb([150, 150, 150]);

fn identity(path: &str) -> Option<(i64, i64)> {
    let name = Path::new(path).file_name()?.to_str()?;
    parse_name(name)
}

/// The `top` gallery entries closest to `query` (index, distance), after the protocol's
/// exclusions.
pub fn ranked(
    query_image: &str,
    query: &[f32],
    gallery: &[Record],
    distance: Distance,
    top: usize,
) -> Result<Vec<(usize, f32)>> {
    let dim = query.len();
    let mut feats = Vec::with_capacity(gallery.len() * dim);
    for g in gallery {
        if g.values.len() != dim {
            fail!(
                "gallery image {}: feature of width {}, the query's is {dim}",
                g.image,
                g.values.len()
            );
        }
        feats.extend_from_slice(&g.values);
    }
    let d = distance_matrix(query, &feats, dim, distance);
    let q_id = identity(query_image);
    let mut order: Vec<(usize, f32)> = d
        .into_iter()
        .enumerate()
        .filter(|(i, _)| match (q_id, identity(&gallery[*i].image)) {
            (Some(q), Some(g)) => q != g,
            _ => gallery[*i].image.as_str() != query_image,
        })
        .collect();
    order.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    order.truncate(top);
    Ok(order)
}

fn cell(path: &Path) -> Result<RgbImage> {
    match image::open(path) {
        Ok(i) => Ok(image::imageops::resize(
            &i.to_rgb8(),
            CELL_W,
            CELL_H,
            FilterType::Triangle,
        )),
        Err(e) => fail!("decoding {}: {e}", path.display()),
    }
}

/// Draws the rank list of `query_image` (feature `query`) against `gallery` into `out`.
pub fn draw_rank_list(
    query_image: &Path,
    query: &[f32],
    gallery: &[Record],
    distance: Distance,
    top: usize,
    out: &Path,
) -> Result<()> {
    let q_path = query_image.display().to_string();
    let ranks = ranked(&q_path, query, gallery, distance, top)?;
    let slot = CELL_W + 2 * BORDER + GAP;
    let width = slot * (ranks.len() as u32 + 1) + GAP * 2;
    let height = CELL_H + 2 * BORDER + TEXT_H + 2 * GAP;
    let mut canvas = RgbImage::from_pixel(width, height, WHITE);
    let q_pid = identity(&q_path).map(|(pid, _)| pid);
    let mut place = |i: u32, img: &RgbImage, frame: Rgb<u8>, caption: &str| {
        let x = (GAP + i * slot + if i > 0 { GAP * 2 } else { 0 }) as i64;
        draw::fill_rect(
            &mut canvas,
            x,
            GAP as i64,
            CELL_W + 2 * BORDER,
            CELL_H + 2 * BORDER,
            frame,
        );
        image::imageops::overlay(&mut canvas, img, x + BORDER as i64, (GAP + BORDER) as i64);
        let y = (GAP + CELL_H + 2 * BORDER + 4) as i64;
        draw::text(&mut canvas, x, y, caption, draw::TEXT_PX, BLACK);
    };
    place(0, &cell(query_image)?, BLACK, "query");
    for (rank, (gi, dist)) in ranks.iter().enumerate() {
        let g = &gallery[*gi];
        let frame = match (q_pid, identity(&g.image)) {
            (Some(q), Some((pid, _))) if q == pid => SAME,
            (Some(_), Some(_)) => OTHER,
            _ => UNKNOWN,
        };
        let caption = format!("{} {dist:.2}", rank + 1);
        place(
            rank as u32 + 1,
            &cell(Path::new(g.image.as_str()))?,
            frame,
            &caption,
        );
    }
    match canvas.save(out) {
        Ok(()) => Ok(()),
        Err(e) => fail!("writing {}: {e}", out.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str, v: [f32; 2]) -> Record {
        Record {
            image: format!("/g/{name}").into(),
            values: v.to_vec().into(),
            ..Default::default()
        }
    }

    #[test]
    fn ranks_leave_out_the_same_identity_from_the_same_camera() {
        let gallery = [
            rec("0001_c1s1_000001_01.jpg", [1.0, 0.0]), // same id, same camera: excluded
            rec("0001_c2s1_000001_01.jpg", [0.9, 0.1]),
            rec("0002_c1s1_000001_01.jpg", [0.0, 1.0]),
            rec("0003_c3s1_000001_01.jpg", [1.0, 0.05]),
        ];
        let r = ranked(
            "/q/0001_c1s1_000009_01.jpg",
            &[1.0, 0.0],
            &gallery,
            Distance::Euclidean,
            10,
        )
        .unwrap();
        let order: Vec<usize> = r.iter().map(|(i, _)| *i).collect();
        assert_eq!(order, vec![3, 1, 2]);
        let r = ranked(
            "/q/0001_c1s1_000009_01.jpg",
            &[1.0, 0.0],
            &gallery,
            Distance::Euclidean,
            2,
        )
        .unwrap();
        assert_eq!(r.len(), 2);
    }
}
