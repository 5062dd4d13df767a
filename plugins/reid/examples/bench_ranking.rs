//! Market-1501 evaluation at scale: random features for `--queries` × `--gallery` images of width
//! `--dim`, ranked with the plugin's evaluation; prints wall time and peak resident memory.
//!
//! cargo run --release -p clasp-plugin-reid --example bench_ranking -- 20000 80000 768
//! (`scripts/bench/reid_eval.sh` runs it beside torchreid's evaluation.)

use std::time::Instant;

use clasp_plugin_reid::ranking::{evaluate, Distance, Side};

/// A small deterministic generator (xorshift64*), so the benchmark needs no dependencies.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn side(
    rng: &mut Rng,
    n: usize,
    dim: usize,
    ids: u64,
    centres: &[f32],
) -> (Vec<f32>, Vec<i64>, Vec<i64>) {
    let mut f = Vec::with_capacity(n * dim);
    let (mut pids, mut cams) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let pid = rng.below(ids) as usize;
        for k in 0..dim {
            f.push(centres[pid * dim + k] + 2.0 * (rng.uniform() - 0.5));
        }
        pids.push(pid as i64 + 1);
        cams.push(rng.below(6) as i64 + 1);
    }
    (f, pids, cams)
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("arguments: QUERIES GALLERY DIM"))
        .collect();
    let [nq, ng, dim] = match args.as_slice() {
        [q, g, d] => [*q, *g, *d],
        [] => [20_000, 80_000, 768],
        _ => panic!("arguments: QUERIES GALLERY DIM"),
    };
    let ids = (ng / 20).max(2) as u64;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let centres: Vec<f32> = (0..ids as usize * dim)
        .map(|_| rng.uniform() - 0.5)
        .collect();
    let (qf, qp, qc) = side(&mut rng, nq, dim, ids, &centres);
    let (gf, gp, gc) = side(&mut rng, ng, dim, ids, &centres);
    drop(centres);
    let features_mib = ((nq + ng) * dim * 4) as f64 / (1 << 20) as f64;
    let before = peak_rss_mib();
    let start = Instant::now();
    let m = evaluate(
        &Side {
            features: &qf,
            pids: &qp,
            camids: &qc,
        },
        &Side {
            features: &gf,
            pids: &gp,
            camids: &gc,
        },
        dim,
        Distance::Euclidean,
        10,
    )
    .expect("evaluation");
    let secs = start.elapsed().as_secs_f64();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "clasp-rs  queries {nq} gallery {ng} dim {dim} threads {threads}: {secs:.1} s, peak RSS \
         {:.0} MiB (features {features_mib:.0} MiB, before ranking {before:.0} MiB), mAP {:.4}",
        peak_rss_mib(),
        m.map
    );
}
