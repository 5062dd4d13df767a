//! The order in which an epoch visits a dataset: sequential, shuffled, or P identities × K images
//! (ReID). Deterministic given (seed, epoch).

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand::Rng;

use super::synth::rng_for;

#[derive(Debug, Clone, PartialEq)]
pub enum Sampler {
    Sequential,
    Shuffle,
    /// Each batch holds `p` identities with `k` images each; `pids[i]` is item i's identity.
    IdentityBalanced {
        p: usize,
        k: usize,
        pids: Vec<i64>,
    },
}

impl Sampler {
    /// Item indices in visiting order for `epoch` (the whole job's: the loader cuts each
    /// process's part out of every batch).
    pub fn order(&self, len: usize, seed: u64, epoch: u64) -> Result<Vec<usize>> {
        let mut rng = rng_for(seed, &[10, epoch]);
        let order = match self {
            Sampler::Sequential => (0..len).collect(),
            Sampler::Shuffle => {
                let mut o: Vec<usize> = (0..len).collect();
                o.shuffle(&mut rng);
                o
            }
            Sampler::IdentityBalanced { p, k, pids } => {
                if pids.len() != len {
                    bail!("P×K sampler: {} identities for {len} items", pids.len());
                }
                let mut by_pid: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
                for (i, pid) in pids.iter().enumerate() {
                    by_pid.entry(*pid).or_default().push(i);
                }
                if by_pid.len() < *p {
                    bail!(
                        "P×K sampler needs at least P = {p} identities, found {}",
                        by_pid.len()
                    );
                }
                // torchreid's RandomIdentitySampler: each identity's images, shuffled (drawn
                // with replacement up to K when it has fewer), cut into chunks of K (a last
                // partial chunk is dropped); batches take one chunk from each of P identities
                // drawn among those with chunks left. An epoch so visits (nearly) every image
                // once. Its length is fixed at ⌊chunks / P⌋ batches: when fewer than P
                // identities have chunks left, the emptied ones are dealt afresh (torchreid
                // stops there instead, so its epochs vary in length and a cosine schedule
                // planned on the first would not end where it should).
                let items: Vec<&Vec<usize>> = by_pid.values().collect();
                let deal = |items: &Vec<usize>, rng: &mut rand_chacha::ChaCha8Rng| {
                    let mut pick = items.clone();
                    while pick.len() < *k {
                        pick.push(items[rng.gen_range(0..items.len())]);
                    }
                    pick.shuffle(rng);
                    let mut chunks: Vec<Vec<usize>> =
                        pick.chunks_exact(*k).map(<[usize]>::to_vec).collect();
                    chunks.reverse(); // popped from the back in dealing order
                    chunks
                };
                let mut chunks: Vec<Vec<Vec<usize>>> =
                    items.iter().map(|i| deal(i, &mut rng)).collect();
                let rounds = chunks.iter().map(Vec::len).sum::<usize>() / p;
                let mut o = Vec::with_capacity(rounds * p * k);
                for _ in 0..rounds {
                    let mut available: Vec<usize> = (0..chunks.len())
                        .filter(|i| !chunks[*i].is_empty())
                        .collect();
                    if available.len() < *p {
                        for (i, c) in chunks.iter_mut().enumerate() {
                            if c.is_empty() {
                                *c = deal(items[i], &mut rng);
                            }
                        }
                        available = (0..chunks.len()).collect();
                    }
                    for i in available.choose_multiple(&mut rng, *p) {
                        o.extend(chunks[*i].pop().expect("available"));
                    }
                }
                o
            }
        };
        Ok(order)
    }
}
