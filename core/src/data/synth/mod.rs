//! Synthetic people with full ground truth (DESIGN §7): identities, poses, cameras, a rasteriser,
//! and the dataset writer that emits the real formats.

pub mod attributes;
pub mod background;
pub mod body;
pub mod captions;
pub mod dataset;
pub mod identity;
pub mod lip;
pub mod pose;
pub mod preview;
pub mod raster;
pub mod scene;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// An RNG for one purpose, derived from the run seed and the indices that name it, so that any
/// item renders the same whatever order or thread renders it.
pub fn rng_for(seed: u64, parts: &[u64]) -> ChaCha8Rng {
    let mut h = seed ^ 0x5EED_C1A5_5EED_C1A5;
    for p in parts {
        h = (h ^ p).wrapping_mul(0x100_0000_01B3).rotate_left(29) ^ 0x9E37_79B9_7F4A_7C15;
    }
    ChaCha8Rng::seed_from_u64(h)
}
