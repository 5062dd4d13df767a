"""Oracle pseudo-labels: a label cache whose values are the synthetic ground truth.

Copies a `clasp label` cache (index + shards) and overwrites, for every image the synthetic pool
has ground truth for, the attribute probabilities with the PA-100K table's 0/1 values and the
part labels with the majority default part (background, head, upper body, arms, lower body,
feet; `teacher::quality::lip_to_part`) of each patch of the LIP label map, at confidence 1.
Images without a label map get confidence 0 (ignored by the part loss); images without an
attribute row keep the teacher's values (the synthetic files list every image of a training
person and one image of each validation and test person: 7,500 of the standard tier's 12,600
pool images). The index is copied unchanged, so `clasp pretrain` accepts the cache as the
teacher's. It answers one question: is the teacher the bottleneck —
would pre-training on perfect labels transfer?

    python scripts/diagnostics/oracle_labels.py runs/quickstart/labels /tmp/labels-oracle \
        runs/quickstart/pool [both|attr|part]
    clasp pretrain --config runs/quickstart/pretrain-clasp/config.resolved.toml \
        --set run.name='"pretrain-oracle"' --set pretrain.labels='"/tmp/labels-oracle"'

Runs in a venv outside the repository (numpy, pillow); nothing in CI needs it.
"""
import csv
import json
import os
import struct
import sys

import numpy as np
from PIL import Image

DTYPES = {"F32": np.float32, "U8": np.uint8}
# LIP class → default part, as `teacher::quality::lip_to_part`.
LIP_TO_PART = {1: 1, 2: 1, 4: 1, 13: 1, 5: 2, 6: 2, 7: 2, 10: 2, 11: 2, 3: 3, 14: 3, 15: 3,
               8: 4, 9: 4, 12: 4, 16: 4, 17: 4, 18: 5, 19: 5}
LUT = np.array([LIP_TO_PART.get(c, 0) for c in range(256)], np.uint8)


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    tensors = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        tensors[k] = np.frombuffer(raw[8 + n + a:8 + n + b], DTYPES[v["dtype"]]).reshape(v["shape"]).copy()
    return raw[:8 + n], header, tensors


def write_safetensors(path, head, header, tensors):
    body = bytearray(sum(v["data_offsets"][1] - v["data_offsets"][0]
                         for k, v in header.items() if k != "__metadata__"))
    for k, v in header.items():
        if k != "__metadata__":
            a, b = v["data_offsets"]
            body[a:b] = tensors[k].tobytes()
    open(path, "wb").write(head + bytes(body))


def patch_parts(label_png, grid):
    lab = LUT[np.array(Image.open(label_png))]
    h, w = lab.shape
    gh, gw = grid
    out = np.zeros(grid, np.uint8)
    for y in range(gh):
        for x in range(gw):
            block = lab[y * h // gh:(y + 1) * h // gh, x * w // gw:(x + 1) * w // gw]
            out[y, x] = np.bincount(block.ravel(), minlength=6).argmax()
    return out


def main():
    src, dst, pool = sys.argv[1:4]
    mode = sys.argv[4] if len(sys.argv) > 4 else "both"
    os.makedirs(dst, exist_ok=True)
    index = json.load(open(f"{src}/index.json"))
    json.dump(index, open(f"{dst}/index.json", "w"))
    vocab = index["vocabulary"]
    attributes = {}
    splits = [s for s in ("train", "val", "test") if os.path.exists(f"{pool}/attributes/{s}.csv")]
    for split in splits:
        for row in csv.DictReader(open(f"{pool}/attributes/{split}.csv")):
            attributes[row["image"]] = np.array([float(row[a]) for a in vocab["attribute_names"]], np.float32)
    images, shard_size = index["images"], index["shard_size"]
    n_attr = n_parts = 0
    for shard in sorted(f for f in os.listdir(src) if f.startswith("shard-")):
        head, header, t = read_safetensors(f"{src}/{shard}")
        first = int(shard[len("shard-"):len("shard-") + 5]) * shard_size
        for r in range(min(t["valid"].shape[0], len(images) - first)):
            name = os.path.basename(images[first + r]["path"])
            if mode in ("both", "attr") and name in attributes:
                t["attributes"][r] = attributes[name]
                n_attr += 1
            if mode in ("both", "part"):
                pngs = [f"{pool}/parsing/{s}_segmentations/{name[:-4]}.png" for s in splits]
                png = next((p for p in pngs if os.path.exists(p)), None)
                if png is not None:
                    t["parts"][r] = patch_parts(png, vocab["grid"])
                    t["confidence"][r] = 1.0
                    n_parts += 1
                else:
                    t["confidence"][r] = 0.0
        write_safetensors(f"{dst}/{shard}", head, header, t)
    print(f"oracle attributes for {n_attr}, parts for {n_parts} of {len(images)} images → {dst}")


if __name__ == "__main__":
    main()
