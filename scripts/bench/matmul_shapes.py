"""GFLOP/s of PyTorch's CPU matmul on the products of a ViT-S training step at batch 32 (the same
shapes and order as `examples/matmul_shapes.rs`).

    ../venv/bin/python scripts/bench/matmul_shapes.py [threads]   # default 2
"""
import sys
import time

import torch

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)


def bench(name, a, b, flops):
    a @ b  # warm-up
    reps = 20
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    s = (time.perf_counter() - start) / reps
    print(f"{name:<28} {2 * flops / s / 1e9:>7.1f} GFLOP/s {s * 1e3:>7.2f} ms")


m = 32 * 133
print(f"torch {torch.__version__} {torch.get_num_threads()} threads")
with torch.inference_mode():
    for name, k, n in [("qkv", 384, 1152), ("fc1", 384, 1536), ("fc2", 1536, 384)]:
        x, w, g = torch.randn(m, k), torch.randn(n, k), torch.randn(m, n)
        bench(f"{name} forward x·Wᵀ", x, w.t(), m * k * n)
        bench(f"{name} input grad g·W", g, w, m * k * n)
        bench(f"{name} weight grad gᵀ·x", g.t(), x, m * k * n)
    heads = 32 * 6
    q, k, p = torch.randn(heads, 133, 64), torch.randn(heads, 133, 64), torch.randn(heads, 133, 133)
    flops = heads * 133 * 133 * 64
    bench("attention q·kᵀ (192 heads)", q, k.transpose(1, 2), flops)
    bench("attention p·v (192 heads)", p, q, flops)
