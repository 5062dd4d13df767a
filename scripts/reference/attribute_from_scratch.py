"""The attribute learning test's recipe in PyTorch/timm, for comparison with clasp-rs.

Fine-tunes timm's VisionTransformer at CLASP's nano size (64 wide, 4 blocks, 2 heads, patch 16)
from random weights on a PA-100K-style table written by `clasp synth`, with the recipe of
tests/tests/plugins.rs::attribute_finetuning_beats_chance_with_either_head: mean-pooled patch
tokens, linear or mlp head, BCE with balanced positive-ratio weights, AdamW lr 3e-3 without weight
decay, one warm-up epoch then cosine, batch 64, random flips, gradient clipping at 3.

    clasp synth --out /tmp/attr --identities 7500 --images-per-id 2 --seed 13 --size 128 64
    OMP_NUM_THREADS=2 python scripts/reference/attribute_from_scratch.py /tmp/attr/attributes

Prints mA on the first 1000 test rows after every epoch, and the seconds each epoch took.
Runs in a venv outside the repository (torch, timm, numpy, pillow); nothing in CI needs it.
"""
import argparse
import csv
import math
import time

import numpy as np
import timm
import torch
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def load(root, table, rows, h, w):
    lines = list(csv.reader(open(f"{root}/{table}")))[1:]
    if rows:
        lines = lines[:rows]
    x = np.stack([
        np.asarray(Image.open(f"{root}/images/{r[0]}").convert("RGB").resize((w, h), Image.BILINEAR),
                   dtype=np.float32) / 255 for r in lines])
    x = ((x - MEAN) / STD).transpose(0, 3, 1, 2)
    y = [[float(v) for v in r[1:]] for r in lines]
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y)


def mean_accuracy(logits, y):
    pred = (logits > 0).float()
    tpr = ((pred == 1) & (y == 1)).sum(0) / y.sum(0).clamp(min=1)
    tnr = ((pred == 0) & (y == 0)).sum(0) / (1 - y).sum(0).clamp(min=1)
    return (0.5 * (tpr + tnr)).mean().item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--head", choices=["linear", "mlp"], default="linear")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--test-rows", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    h, w, bs, lr = 128, 64, 64, 3e-3
    xtr, ytr = load(a.root, "train.csv", 0, h, w)
    xte, yte = load(a.root, "test.csv", a.test_rows, h, w)
    a_n = ytr.shape[1]
    model = timm.models.vision_transformer.VisionTransformer(
        img_size=(h, w), patch_size=16, embed_dim=64, depth=4, num_heads=2, num_classes=0,
        global_pool="avg")
    head = (torch.nn.Linear(64, a_n) if a.head == "linear" else torch.nn.Sequential(
        torch.nn.Linear(64, 512), torch.nn.ReLU(), torch.nn.Dropout(0.1), torch.nn.Linear(512, a_n)))
    net = torch.nn.Sequential(model, head)
    p = ytr.mean(0).clamp(1e-3, 1 - 1e-3)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0)
    per_epoch = math.ceil(len(xtr) / bs)
    total = a.epochs * per_epoch

    def lr_at(step):
        if step < per_epoch:
            return step / per_epoch
        t = (step - per_epoch) / max(1, total - per_epoch)
        return 0.5 * (1 + math.cos(math.pi * t))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    for epoch in range(a.epochs):
        start = time.time()
        net.train()
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), bs):
            idx = perm[i:i + bs]
            x, y = xtr[idx].clone(), ytr[idx]
            flip = torch.rand(len(x)) < 0.5
            x[flip] = x[flip].flip(3)
            weight = torch.where(y > 0.5, 0.5 / p, 0.5 / (1 - p))
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x), y, weight=weight)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 3.0)
            opt.step()
            sched.step()
        net.eval()
        with torch.no_grad():
            logits = torch.cat([net(xte[i:i + 256]) for i in range(0, len(xte), 256)])
        print(f"epoch {epoch + 1}: mA {mean_accuracy(logits, yte):.4f} ({time.time() - start:.1f} s)",
              flush=True)


if __name__ == "__main__":
    main()
