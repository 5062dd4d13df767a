//! k-reciprocal re-ranking (Zhong et al., CVPR 2017) as torchreid's `re_ranking` computes it
//! (k1 = 20, k2 = 6, λ = 0.3 by default): squared distances normalised per row, k-reciprocal
//! neighbour sets expanded by their ½k1-reciprocal neighbours, Gaussian-weighted encodings,
//! query expansion over the k2 nearest, and the Jaccard distance blended with the original.
//! Everything in f32 like the reference. The encodings are kept sparse, but the (nq+ng)² distance
//! matrix is dense, as in torchreid: re-ranking suits Market/Duke-size sets, not an 80k gallery.

use std::collections::BTreeMap;

/// The re-ranking's three parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rerank {
    pub k1: usize,
    pub k2: usize,
    pub lambda: f32,
}

impl Default for Rerank {
    fn default() -> Self {
        Self {
            k1: 20,
            k2: 6,
            lambda: 0.3,
        }
    }
}

/// Indices of the `k` smallest values of `row`, nearest first.
fn nearest(row: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..row.len()).collect();
    let k = k.min(row.len());
    if k < row.len() {
        idx.select_nth_unstable_by(k, |a, b| row[*a].total_cmp(&row[*b]));
        idx.truncate(k);
    }
    idx.sort_by(|a, b| row[*a].total_cmp(&row[*b]).then(a.cmp(b)));
    idx
}

/// The k-reciprocal neighbours of `i`: those among its `k + 1` nearest that have `i` among theirs.
fn k_reciprocal(ranks: &[Vec<usize>], i: usize, k: usize) -> Vec<usize> {
    ranks[i][..(k + 1).min(ranks[i].len())]
        .iter()
        .copied()
        .filter(|&c| ranks[c][..(k + 1).min(ranks[c].len())].contains(&i))
        .collect()
}

/// Re-ranked query × gallery distances, row-major `[nq, ng]`, from the query–gallery,
/// query–query and gallery–gallery distances (row-major).
pub fn re_rank(q_g: &[f32], q_q: &[f32], g_g: &[f32], nq: usize, ng: usize, p: Rerank) -> Vec<f32> {
    let n = nq + ng;
    // The full matrix [[qq, qg], [qgᵀ, gg]], squared.
    let full = |i: usize, j: usize| -> f32 {
        let d = match (i < nq, j < nq) {
            (true, true) => q_q[i * nq + j],
            (true, false) => q_g[i * ng + (j - nq)],
            (false, true) => q_g[j * ng + (i - nq)],
            (false, false) => g_g[(i - nq) * ng + (j - nq)],
        };
        d * d
    };
    // torchreid divides each column by its maximum and transposes: row i of `dist` is column i
    // of the squared matrix over that column's maximum.
    let mut dist = vec![0.0f32; n * n];
    for i in 0..n {
        let max = (0..n).map(|k| full(k, i)).fold(f32::MIN, f32::max);
        for j in 0..n {
            dist[i * n + j] = full(j, i) / max;
        }
    }
    let half = (p.k1 as f64 / 2.0).round() as usize;
    let depth = (p.k1 + 1).max(p.k2).max(half + 1);
    let ranks: Vec<Vec<usize>> = (0..n)
        .map(|i| nearest(&dist[i * n..(i + 1) * n], depth))
        .collect();

    // Sparse Gaussian encodings V[i] over the expanded k-reciprocal set (ascending indices).
    let mut v: Vec<Vec<(usize, f32)>> = Vec::with_capacity(n);
    for i in 0..n {
        let base = k_reciprocal(&ranks, i, p.k1);
        let mut expanded = base.clone();
        for &c in &base {
            let cand = k_reciprocal(&ranks, c, half);
            let shared = cand.iter().filter(|x| base.contains(x)).count();
            if shared as f64 > 2.0 / 3.0 * cand.len() as f64 {
                expanded.extend(cand);
            }
        }
        expanded.sort_unstable();
        expanded.dedup();
        let w: Vec<f32> = expanded.iter().map(|&j| (-dist[i * n + j]).exp()).collect();
        let sum: f32 = w.iter().sum();
        v.push(
            expanded
                .into_iter()
                .zip(w)
                .map(|(j, w)| (j, w / sum))
                .collect(),
        );
    }
    // Query expansion: each encoding becomes the mean of its k2 nearest neighbours' encodings.
    if p.k2 != 1 {
        let k2 = p.k2.min(n);
        v = (0..n)
            .map(|i| {
                let mut acc: BTreeMap<usize, f32> = BTreeMap::new();
                for &r in &ranks[i][..k2] {
                    for &(j, w) in &v[r] {
                        *acc.entry(j).or_insert(0.0) += w;
                    }
                }
                acc.into_iter()
                    .map(|(j, w)| (j, w / k2 as f32))
                    .filter(|(_, w)| *w != 0.0)
                    .collect()
            })
            .collect();
    }
    // Which encodings are non-zero at each position.
    let mut inverted: Vec<Vec<(usize, f32)>> = vec![Vec::new(); n];
    for (row, enc) in v.iter().enumerate() {
        for &(j, w) in enc {
            inverted[j].push((row, w));
        }
    }
    let mut out = vec![0.0f32; nq * ng];
    let mut shared = vec![0.0f32; n];
    for i in 0..nq {
        shared.iter_mut().for_each(|s| *s = 0.0);
        for &(k, w) in &v[i] {
            for &(row, w_row) in &inverted[k] {
                shared[row] += w.min(w_row);
            }
        }
        for g in 0..ng {
            let s = shared[nq + g];
            let jaccard = 1.0 - s / (2.0 - s);
            out[i * ng + g] = jaccard * (1.0 - p.lambda) + dist[i * n + nq + g] * p.lambda;
        }
    }
    out
}
