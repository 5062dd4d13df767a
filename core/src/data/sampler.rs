//! The order in which an epoch visits a dataset: sequential, shuffled, or P identities × K images
//! (ReID); then this rank's share. Deterministic given (seed, epoch).

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

/// This process's part of the data when training runs on `world_size` processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub rank: usize,
    pub world_size: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Self {
            rank: 0,
            world_size: 1,
        }
    }
}

impl Sampler {
    /// Item indices in visiting order for `epoch`, already cut to `shard`'s part (every rank
    /// gets the same number of items, so their steps stay in lockstep).
    pub fn order(&self, len: usize, seed: u64, epoch: u64, shard: Shard) -> Result<Vec<usize>> {
        if shard.world_size == 0 || shard.rank >= shard.world_size {
            bail!(
                "shard rank {} of world size {}",
                shard.rank,
                shard.world_size
            );
        }
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
                let mut ids: Vec<i64> = by_pid.keys().copied().collect();
                ids.shuffle(&mut rng);
                // Whole batches of P identities; each gives K images (repeating when it has fewer).
                let mut o = Vec::new();
                for group in ids.chunks_exact(*p) {
                    for pid in group {
                        let items = &by_pid[pid];
                        let mut pick: Vec<usize> = items.clone();
                        pick.shuffle(&mut rng);
                        while pick.len() < *k {
                            pick.push(items[rng.gen_range(0..items.len())]);
                        }
                        o.extend_from_slice(&pick[..*k]);
                    }
                }
                o
            }
        };
        let per_rank = order.len() / shard.world_size;
        Ok(order
            .into_iter()
            .skip(shard.rank)
            .step_by(shard.world_size)
            .take(per_rank)
            .collect())
    }
}
