"""The attribute loss of the best image-blind predictor on a `clasp label` cache.

Pre-training's attribute loss is a soft BCE with positive-ratio weights (exp(1 − r) on presence,
exp(r) on absence; `core/src/pretrain/pseudo_losses.rs`). The best constant prediction per
attribute is q = w₁·p̄ / (w₁·p̄ + w₀·(1 − p̄)); its loss is the level a backbone that ignores the
image would reach. A pre-training run's `attr` loss (metrics.jsonl) below it means the CLS
carries attribute information the teacher's labels hold.

    python scripts/diagnostics/constant_attribute_loss.py runs/quickstart/labels

Runs in a venv outside the repository (numpy); nothing in CI needs it.
"""
import json
import os
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "U8": np.uint8}


def read(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for k, v in header.items():
        if k != "__metadata__":
            a, b = v["data_offsets"]
            out[k] = np.frombuffer(raw[8 + n + a:8 + n + b], DTYPES[v["dtype"]]).reshape(v["shape"])
    return out


def main():
    src = sys.argv[1]
    index = json.load(open(f"{src}/index.json"))
    total, shard_size = len(index["images"]), index["shard_size"]
    rows = []
    for shard in sorted(f for f in os.listdir(src) if f.startswith("shard-")):
        t = read(f"{src}/{shard}")
        first = int(shard[len("shard-"):len("shard-") + 5]) * shard_size
        n = min(t["valid"].shape[0], total - first)
        valid = t["valid"][:n].astype(bool)
        rows.append(t["attributes"][:n][valid].astype(np.float64))
    p = np.concatenate(rows)
    r = np.clip(p.mean(0), 1e-3, 1 - 1e-3)
    w1, w0 = np.exp(1 - r), np.exp(r)
    q = w1 * r / (w1 * r + w0 * (1 - r))
    loss = (w1 * p * -np.log(q) + w0 * (1 - p) * -np.log(1 - q)).mean()
    print(f"{len(p)} labelled images, {p.shape[1]} attributes: "
          f"constant predictor's weighted soft BCE {loss:.4f}")


if __name__ == "__main__":
    main()
