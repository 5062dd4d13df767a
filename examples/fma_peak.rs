//! The ceiling of any f32 kernel on this CPU: fused multiply-adds per second with every core busy
//! and no memory traffic (12 independent FMA chains per thread, enough to hide FMA latency on two
//! FMA pipes), with 8-lane AVX2 and, where the CPU has it, 16-lane AVX-512 (which some cores run
//! as two 8-lane halves, so it is not always faster). Read beside `matmul_shapes` (and PyTorch's
//! `scripts/bench/matmul_shapes.py`): once a matrix kernel runs at ~70 % of this, no kernel can
//! make the same products 1.5× faster.
//!
//!     cargo run --release -p clasp-core --example fma_peak [-- THREADS]

use std::time::Instant;

const CHAINS: usize = 12;
const ROUNDS: usize = 300_000_000;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_chains_256(rounds: usize) -> f32 {
    use std::arch::x86_64::*;
    let m = _mm256_set1_ps(0.999_9);
    let c = _mm256_set1_ps(1e-6);
    let mut acc = [_mm256_setzero_ps(); CHAINS];
    for (i, a) in acc.iter_mut().enumerate() {
        *a = _mm256_set1_ps(i as f32);
    }
    for _ in 0..rounds {
        for a in acc.iter_mut() {
            *a = _mm256_fmadd_ps(*a, m, c);
        }
    }
    let mut lanes = [0f32; 8];
    let sum = acc
        .iter()
        .fold(_mm256_setzero_ps(), |s, a| _mm256_add_ps(s, *a));
    _mm256_storeu_ps(lanes.as_mut_ptr(), sum);
    lanes.iter().sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_chains_512(rounds: usize) -> f32 {
    use std::arch::x86_64::*;
    let m = _mm512_set1_ps(0.999_9);
    let c = _mm512_set1_ps(1e-6);
    let mut acc = [_mm512_setzero_ps(); CHAINS];
    for (i, a) in acc.iter_mut().enumerate() {
        *a = _mm512_set1_ps(i as f32);
    }
    for _ in 0..rounds {
        for a in acc.iter_mut() {
            *a = _mm512_fmadd_ps(*a, m, c);
        }
    }
    acc.iter().map(|a| _mm512_reduce_add_ps(*a)).sum()
}

/// Runs `chains` on `n` threads at once and prints GFLOP/s.
#[cfg(target_arch = "x86_64")]
fn measure(what: &str, n: usize, lanes: usize, chains: fn(usize) -> f32) {
    let start = Instant::now();
    let sums: Vec<f32> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n).map(|_| s.spawn(|| chains(ROUNDS))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let secs = start.elapsed().as_secs_f64();
    // Two flops per lane per FMA.
    let gflops = (n * ROUNDS * CHAINS * lanes * 2) as f64 / secs / 1e9;
    println!(
        "{what:<8} {n} thread(s): {gflops:7.1} GFLOP/s f32 FMA peak (checksum {:.3})",
        sums.iter().sum::<f32>()
    );
}

fn main() -> anyhow::Result<()> {
    #[cfg(target_arch = "x86_64")]
    {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            anyhow::bail!("this CPU has no AVX2 + FMA");
        }
        let threads: usize = match std::env::args().nth(1) {
            Some(t) => t.parse()?,
            None => std::thread::available_parallelism()?.get(),
        };
        // SAFETY (both closures): the features they enable were detected first.
        for n in [1, threads] {
            measure("AVX2", n, 8, |r| unsafe { fma_chains_256(r) });
        }
        if is_x86_feature_detected!("avx512f") {
            for n in [1, threads] {
                measure("AVX-512", n, 16, |r| unsafe { fma_chains_512(r) });
            }
        }
        Ok(())
    }
    #[cfg(not(target_arch = "x86_64"))]
    anyhow::bail!("fma_peak measures x86-64 FMA units only")
}
