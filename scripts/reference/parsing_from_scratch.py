"""The quickstart's parsing fine-tuning in PyTorch/timm, for comparison with clasp-rs.

Fine-tunes timm's VisionTransformer at CLASP's nano size (64 wide, 4 blocks, 2 heads, patch 16,
input 128×64) from random weights on a LIP-style folder written by `clasp synth` (the
quickstart's `runs/quickstart/data/parsing`), with the parsing plugin's head (two stride-2 4×4
transposed convolutions with batch norm and ReLU, `channels` wide, then a 1×1 convolution to
LIP's 20 classes) and loss (per-pixel cross entropy against the label at each score pixel's
centre). AdamW (weight decay 0.05), the head's LR `--head-lr-scale` times the backbone's, one
warm-up epoch then cosine, batch 32, no flips. mIoU as the plugin computes it: scores upsampled
bilinearly to the label map, one confusion matrix over the split, the mean over classes present
in the ground truth or the prediction.

    OMP_NUM_THREADS=2 python scripts/reference/parsing_from_scratch.py \
        runs/quickstart/data/parsing --epochs 6 --lr 1e-3 --head-lr-scale 10

Runs in a venv outside the repository (torch, timm, numpy, pillow); nothing in CI needs it.
"""
import argparse
import math
import time

import numpy as np
import timm
import torch
from PIL import Image

CLASSES = 20


def load(root, split):
    ids = [line.strip() for line in open(f"{root}/{split}_id.txt") if line.strip()]
    images, labels = [], []
    for i in ids:
        im = Image.open(f"{root}/{split}_images/{i}.jpg").convert("RGB")
        images.append(np.asarray(im.resize((64, 128), Image.BILINEAR), dtype=np.float32) / 255.0)
        labels.append(np.array(Image.open(f"{root}/{split}_segmentations/{i}.png")))
    x = torch.tensor(np.stack(images)).permute(0, 3, 1, 2)
    return (x - 0.45) / 0.27, torch.tensor(np.stack(labels)).long()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--head-lr-scale", type=float, default=10.0)
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    x_train, y_train = load(args.root, "train")
    x_val, y_val = load(args.root, "val")
    c = args.channels
    vit = timm.models.vision_transformer.VisionTransformer(
        img_size=(128, 64), patch_size=16, embed_dim=64, depth=4, num_heads=2, num_classes=0
    )

    def up(c_in):
        return torch.nn.Sequential(
            torch.nn.ConvTranspose2d(c_in, c, 4, 2, 1, bias=False),
            torch.nn.BatchNorm2d(c),
            torch.nn.ReLU(),
        )

    head = torch.nn.Sequential(up(64), up(c), torch.nn.Conv2d(c, CLASSES, 1))

    def forward(x):
        tokens = vit.forward_features(x)[:, 1:]  # patch tokens, [B, 8·4, 64]
        return head(tokens.transpose(1, 2).reshape(x.shape[0], 64, 8, 4))

    # The 32×16 score map on a 256×128 label map: the label at each score pixel's centre.
    def targets(y):
        return y[:, 4::8, 4::8]

    opt = torch.optim.AdamW(
        [
            {"params": vit.parameters(), "lr": args.lr},
            {"params": head.parameters(), "lr": args.lr * args.head_lr_scale},
        ],
        weight_decay=0.05,
    )
    base = [g["lr"] for g in opt.param_groups]
    n = len(x_train)
    per_epoch = math.ceil(n / 32)
    total, warm, step = args.epochs * per_epoch, per_epoch, 0
    start = time.time()
    for epoch in range(args.epochs):
        vit.train()
        head.train()
        order, loss_sum = torch.randperm(n), 0.0
        for s in range(per_epoch):
            idx = order[s * 32 : (s + 1) * 32]
            if step < warm:
                f = (step + 1) / warm
            else:
                f = 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))
            for g, b in zip(opt.param_groups, base):
                g["lr"] = b * f
            loss = torch.nn.functional.cross_entropy(
                forward(x_train[idx]), targets(y_train[idx]), ignore_index=255
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item()
            step += 1
        print(f"epoch {epoch + 1}: loss {loss_sum / per_epoch:.4f}")
    vit.eval()
    head.eval()
    confusion = np.zeros((CLASSES, CLASSES), np.int64)
    with torch.no_grad():
        for s in range(0, len(x_val), 64):
            scores = torch.nn.functional.interpolate(
                forward(x_val[s : s + 64]), size=(256, 128), mode="bilinear", align_corners=False
            )
            predicted, truth = scores.argmax(1), y_val[s : s + 64]
            keep = truth != 255
            pairs = (truth[keep] * CLASSES + predicted[keep]).numpy()
            confusion += np.bincount(pairs, minlength=CLASSES**2).reshape(CLASSES, CLASSES)
    inter = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - inter
    present = union > 0
    print(
        f"mIoU {np.mean(inter[present] / union[present]):.4f} "
        f"pixel accuracy {inter.sum() / confusion.sum():.4f} ({time.time() - start:.1f} s)"
    )


if __name__ == "__main__":
    main()
