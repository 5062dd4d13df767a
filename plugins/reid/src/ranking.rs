//! Retrieval metrics under the Market-1501 protocol: mAP, CMC and mINP.
//!
//! For each query the gallery is ranked by distance; gallery images of the query's identity taken
//! by the query's camera are removed, as are junk images (identity −1); distractors (identity 0)
//! stay as negatives. Queries whose identity is absent from what remains are skipped and counted.
//! Per query: AP over the ranked matches, the CMC step at the first match, and INP = (number of
//! matches) / (rank of the last match) — fast-reid's mINP. Distances are computed for blocks of
//! 32 queries at a time (blocks spread over threads), so memory is 32 rows of gallery distances
//! per thread however large the query set is.

use clasp_sdk::{fail, Result};

/// Identity of junk gallery images, ignored in every ranking (Market-1501's `-1`).
pub const JUNK: i64 = -1;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Distance {
    /// 1 − cosine similarity.
    Cosine,
    /// Squared Euclidean distance (the same ranking as Euclidean).
    Euclidean,
}

/// Features of a set of images with their identities and cameras.
pub struct Side<'a> {
    /// Row-major `[n, dim]`.
    pub features: &'a [f32],
    pub pids: &'a [i64],
    pub camids: &'a [i64],
}

impl Side<'_> {
    fn len(&self) -> usize {
        self.pids.len()
    }

    fn check(&self, what: &str, dim: usize) -> Result<()> {
        let n = self.len();
        if self.camids.len() != n || self.features.len() != n * dim {
            fail!(
                "{what}: {} pids, {} camids and {} feature values do not describe {n} images of dimension {dim}",
                n,
                self.camids.len(),
                self.features.len()
            );
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RankingMetrics {
    pub map: f64,
    /// CMC at ranks 1..=max_rank.
    pub cmc: Vec<f64>,
    pub minp: f64,
    /// Queries with at least one valid match (the others are skipped).
    pub valid_queries: usize,
}

impl RankingMetrics {
    /// CMC at rank `k` (1-based); the last value when `k` exceeds the curve.
    pub fn rank(&self, k: usize) -> f64 {
        self.cmc
            .get(k.saturating_sub(1))
            .or(self.cmc.last())
            .copied()
            .unwrap_or(0.0)
    }
}

fn norms(features: &[f32], dim: usize) -> Vec<f64> {
    features.chunks(dim).map(|r| dot(r, r)).collect()
}

/// `Σ a·b` in f64 with independent accumulators, so the compiler can vectorise it.
fn dot(a: &[f32], b: &[f32]) -> f64 {
    let mut acc = [0.0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] as f64 * y[k] as f64;
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| *x as f64 * *y as f64).sum();
    acc.iter().sum::<f64>() + tail
}

/// The distance of two features from their dot product and squared norms.
fn distance_of(dot: f64, a_sq: f64, b_sq: f64, distance: Distance) -> f64 {
    match distance {
        Distance::Euclidean => a_sq + b_sq - 2.0 * dot,
        Distance::Cosine => 1.0 - dot / (a_sq.sqrt() * b_sq.sqrt()).max(1e-12),
    }
}

/// Distances from one query to every gallery image, in f64.
fn distances_into(
    out: &mut [f64],
    q: &[f32],
    q_sq: f64,
    gallery: &[f32],
    g_sq: &[f64],
    dim: usize,
    distance: Distance,
) {
    for (j, (g, d)) in gallery.chunks(dim).zip(out.iter_mut()).enumerate() {
        *d = distance_of(dot(q, g), q_sq, g_sq[j], distance);
    }
}

/// Row-major `[na, nb]` distances between the rows of `a` and `b` (features of width `dim`).
pub fn distance_matrix(a: &[f32], b: &[f32], dim: usize, distance: Distance) -> Vec<f32> {
    let b_sq = norms(b, dim);
    let mut row = vec![0.0f64; b_sq.len()];
    let mut out = Vec::with_capacity(a.len() / dim.max(1) * b_sq.len());
    for q in a.chunks(dim) {
        distances_into(&mut row, q, dot(q, q), b, &b_sq, dim, distance);
        out.extend(row.iter().map(|d| *d as f32));
    }
    out
}

/// Market-1501 evaluation of `query` against `gallery` (features of width `dim`).
pub fn evaluate(
    query: &Side,
    gallery: &Side,
    dim: usize,
    distance: Distance,
    max_rank: usize,
) -> Result<RankingMetrics> {
    let scores = query_scores(query, gallery, dim, distance)?;
    RankingMetrics::from_queries(scores.iter().flatten(), max_rank.min(gallery.len()))
}

/// Market-1501 evaluation of a precomputed row-major `[nq, ng]` distance matrix (re-ranked
/// distances, or distances another system computed); only identities and cameras of the sides
/// are read.
pub fn evaluate_distances(
    dist: &[f32],
    query: &Side,
    gallery: &Side,
    max_rank: usize,
) -> Result<RankingMetrics> {
    let scores = query_scores_of_distances(dist, query, gallery)?;
    RankingMetrics::from_queries(scores.iter().flatten(), max_rank.min(gallery.len()))
}

/// Each query's score against `gallery` (features of width `dim`), in query order; `None` for a
/// query without a valid match.
pub fn query_scores(
    query: &Side,
    gallery: &Side,
    dim: usize,
    distance: Distance,
) -> Result<Vec<Option<QueryScore>>> {
    query.check("query", dim)?;
    gallery.check("gallery", dim)?;
    let g_sq = norms(gallery.features, dim);
    let ng = gallery.len();
    Ok(score_rows(query, gallery, |q0, out| {
        // Gallery-major over a block of queries: each gallery feature is read from memory once
        // per block, not once per query (an 80k gallery is far larger than any cache).
        let nb = out.len() / ng.max(1);
        let qs: Vec<&[f32]> = (q0..q0 + nb)
            .map(|qi| &query.features[qi * dim..(qi + 1) * dim])
            .collect();
        let q_sq: Vec<f64> = qs.iter().map(|q| dot(q, q)).collect();
        for (j, g) in gallery.features.chunks(dim).enumerate() {
            for (b, q) in qs.iter().enumerate() {
                out[b * ng + j] = distance_of(dot(q, g), q_sq[b], g_sq[j], distance);
            }
        }
    }))
}

/// [`query_scores`] of a precomputed row-major `[nq, ng]` distance matrix.
pub fn query_scores_of_distances(
    dist: &[f32],
    query: &Side,
    gallery: &Side,
) -> Result<Vec<Option<QueryScore>>> {
    let (nq, ng) = (query.len(), gallery.len());
    if dist.len() != nq * ng || query.camids.len() != nq || gallery.camids.len() != ng {
        fail!(
            "{} distances for {nq} queries × {ng} gallery images ({} / {} cameras)",
            dist.len(),
            query.camids.len(),
            gallery.camids.len()
        );
    }
    Ok(score_rows(query, gallery, |q0, out| {
        for (o, d) in out.iter_mut().zip(&dist[q0 * ng..]) {
            *o = *d as f64;
        }
    }))
}

/// One query's result under the protocol.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueryScore {
    pub ap: f64,
    /// Rank (0-based, among the images kept for this query) of its first match.
    pub first_match: usize,
    pub inp: f64,
}

impl RankingMetrics {
    /// The means over the queries that have a valid match (`None` rows are skipped), CMC up to
    /// `max_rank`.
    pub fn from_queries<'a>(
        queries: impl IntoIterator<Item = &'a QueryScore>,
        max_rank: usize,
    ) -> Result<Self> {
        let max_rank = max_rank.max(1);
        let (mut ap, mut inp, mut cmc, mut valid) = (0.0, 0.0, vec![0.0; max_rank], 0usize);
        for q in queries {
            ap += q.ap;
            inp += q.inp;
            for c in cmc.iter_mut().skip(q.first_match) {
                *c += 1.0;
            }
            valid += 1;
        }
        if valid == 0 {
            fail!("no query identity appears in the gallery (from another camera)");
        }
        let n = valid as f64;
        Ok(RankingMetrics {
            map: ap / n,
            cmc: cmc.into_iter().map(|c| c / n).collect(),
            minp: inp / n,
            valid_queries: valid,
        })
    }
}

/// Queries whose distances are computed together (memory: this many rows per thread).
const QUERY_BLOCK: usize = 32;

/// Each query's score, in query order (`None`: no valid match), from the distances
/// `block(q0, out)` fills for queries `q0..q0 + out.len() / ng`, row-major. Query blocks are
/// spread over threads; each thread holds one block of rows, so memory stays
/// O(threads × block × ng).
fn score_rows(
    query: &Side,
    gallery: &Side,
    block: impl Fn(usize, &mut [f64]) + Sync,
) -> Vec<Option<QueryScore>> {
    let (nq, ng) = (query.len(), gallery.len());
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(nq.div_ceil(QUERY_BLOCK).max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let parts: Vec<Vec<(usize, Option<QueryScore>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (block, next) = (&block, &next);
                s.spawn(move || {
                    let mut out = Vec::new();
                    let mut dist = vec![0.0f64; QUERY_BLOCK * ng];
                    loop {
                        let q0 = next.fetch_add(QUERY_BLOCK, std::sync::atomic::Ordering::Relaxed);
                        if q0 >= nq {
                            break out;
                        }
                        let nb = QUERY_BLOCK.min(nq - q0);
                        block(q0, &mut dist[..nb * ng]);
                        for b in 0..nb {
                            let row = &dist[b * ng..(b + 1) * ng];
                            let qi = q0 + b;
                            out.push((
                                qi,
                                score_query(row, query.pids[qi], query.camids[qi], gallery),
                            ));
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("ranking thread panicked"))
            .collect()
    });
    let mut scores = vec![None; nq];
    for (qi, score) in parts.into_iter().flatten() {
        scores[qi] = score;
    }
    scores
}

/// One query's AP, first-match rank and INP from its gallery distances `row`; `None` without a
/// valid match. Only the ranks of the matches matter, so instead of sorting the whole gallery,
/// each match's rank among the kept images is counted: O(ng · log matches). Ties rank by
/// gallery index, as a stable sort of the distances would.
fn score_query(row: &[f64], q_pid: i64, q_cam: i64, gallery: &Side) -> Option<QueryScore> {
    // Kept: no junk, and no image of the query's identity from the query's camera.
    let kept = |j: usize| {
        let (pid, cam) = (gallery.pids[j], gallery.camids[j]);
        pid != JUNK && !(pid == q_pid && cam == q_cam)
    };
    let key = |j: usize| (row[j], j);
    let before = |a: (f64, usize), b: (f64, usize)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
    let mut matches: Vec<usize> = (0..row.len())
        .filter(|&j| gallery.pids[j] == q_pid && kept(j))
        .collect();
    if matches.is_empty() {
        return None;
    }
    matches.sort_by(|a, b| before(key(*a), key(*b)));
    // bucket[i]: kept images with exactly i matches at or before them (match i − 1 itself falls
    // in bucket i).
    let mut bucket = vec![0usize; matches.len() + 1];
    for j in (0..row.len()).filter(|j| kept(*j)) {
        bucket[matches.partition_point(|m| before(key(*m), key(j)).is_le())] += 1;
    }
    // Rank (0-based, among kept images) of match i: everything in buckets 0..=i is before it.
    let ranks: Vec<usize> = bucket[..matches.len()]
        .iter()
        .scan(0usize, |ahead, b| {
            *ahead += b;
            Some(*ahead)
        })
        .collect();
    let num_rel = matches.len();
    let ap: f64 = ranks
        .iter()
        .enumerate()
        .map(|(i, r)| (i + 1) as f64 / (r + 1) as f64)
        .sum();
    Some(QueryScore {
        ap: ap / num_rel as f64,
        first_match: ranks[0],
        inp: num_rel as f64 / (ranks[num_rel - 1] + 1) as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One query (identity 1, camera 1); gallery ranked by a 1-D feature.
    #[test]
    fn hand_computed_case() {
        // Gallery features (distance = squared difference to the query's 0.0):
        // g0 pid 1 cam 1 (same camera: removed) at 0.1
        // g1 pid 2 cam 2 (negative)             at 0.2
        // g2 pid 1 cam 2 (match)                at 0.3
        // g3 pid -1 cam 2 (junk: removed)       at 0.4
        // g4 pid 0 cam 3 (distractor)           at 0.5
        // g5 pid 1 cam 3 (match)                at 0.6
        // Kept ranking: g1 ✗, g2 ✓, g4 ✗, g5 ✓ → AP = (1/2 + 2/4) / 2 = 0.5,
        // first match at rank 2, INP = 2 matches / rank 4 of the last = 0.5.
        let g = [0.1f32, 0.2, 0.3, 0.4, 0.5, 0.6];
        let gallery = Side {
            features: &g,
            pids: &[1, 2, 1, JUNK, 0, 1],
            camids: &[1, 2, 2, 2, 3, 3],
        };
        let query = Side {
            features: &[0.0],
            pids: &[1],
            camids: &[1],
        };
        let m = evaluate(&query, &gallery, 1, Distance::Euclidean, 3).unwrap();
        assert!((m.map - 0.5).abs() < 1e-12);
        assert_eq!(m.cmc, vec![0.0, 1.0, 1.0]);
        assert!((m.minp - 0.5).abs() < 1e-12);
        assert_eq!(m.valid_queries, 1);
    }

    #[test]
    fn queries_without_a_valid_match_are_skipped_and_shapes_checked() {
        let gallery = Side {
            features: &[1.0, 0.0, 0.0, 1.0],
            pids: &[5, 6],
            camids: &[1, 2],
        };
        let query = Side {
            features: &[1.0, 0.1, 0.0, 1.0],
            pids: &[5, 9],
            camids: &[2, 1],
        };
        let m = evaluate(&query, &gallery, 2, Distance::Cosine, 10).unwrap();
        assert_eq!(m.valid_queries, 1);
        assert_eq!(m.cmc.len(), 2, "max rank is capped at the gallery size");
        assert_eq!(m.rank(1), 1.0);
        let bad = Side {
            features: &[1.0],
            pids: &[5, 6],
            camids: &[1, 2],
        };
        assert!(evaluate(&query, &bad, 2, Distance::Cosine, 10).is_err());
    }
}
