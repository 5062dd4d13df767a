"""torchreid's Market-1501 evaluation at scale, the reference for `bench_ranking`.

As torchreid's engine does it: the full query × gallery distance matrix at once
(`compute_distance_matrix`, squared Euclidean, float32 — here with numpy's BLAS matmul, the same
arithmetic as torch's `addmm` on CPU), then `eval_market1501` from the sdist's `rank.py` (its
pure-Python path; the Cython one needs a compiler step). Prints wall time and peak RSS.

    python scripts/bench/reid_eval_torchreid.py RANK_PY QUERIES GALLERY DIM
"""
import importlib.util
import resource
import sys
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")
spec = importlib.util.spec_from_file_location("torchreid_rank", sys.argv[1])
rank = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rank)
nq, ng, dim = (int(a) for a in sys.argv[2:5])

rng = np.random.default_rng(0)
ids = max(ng // 20, 2)
centres = rng.random((ids, dim), dtype=np.float32) - 0.5
q_pids, g_pids = rng.integers(0, ids, nq), rng.integers(0, ids, ng)
qf = centres[q_pids] + 2 * (rng.random((nq, dim), dtype=np.float32) - 0.5)
gf = centres[g_pids] + 2 * (rng.random((ng, dim), dtype=np.float32) - 0.5)
q_cams, g_cams = rng.integers(1, 7, nq), rng.integers(1, 7, ng)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

start = time.perf_counter()
# torchreid.metrics.distance.euclidean_squared_distance
distmat = (qf ** 2).sum(1, keepdims=True) + (gf ** 2).sum(1)[None, :] - 2 * qf @ gf.T
cmc, mAP = rank.eval_market1501(distmat, q_pids + 1, g_pids + 1, q_cams, g_cams, 10)
secs = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(
    f"torchreid queries {nq} gallery {ng} dim {dim}: {secs:.1f} s, peak RSS {peak:.0f} MiB "
    f"(before ranking {before:.0f} MiB), mAP {mAP:.4f}"
)
