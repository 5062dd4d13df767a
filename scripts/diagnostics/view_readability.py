"""Which way a person faces: how well it reads from the pixels and from a backbone's frozen features.

A pose probe must tell front from back (and facing left from right) before it can name the left
and right keypoints; the view-aware median pose scores highly because poses vary little once the
view is known. This measures the view itself: a logistic regression (standardised inputs, C from
0.001 to 1, best mean accuracy of 5-fold cross-validation) on the pose set's training and
validation people — the test split is not read — from
- the raw pixels of each person crop (box padded to the model's 1:2 aspect by 1.25, resized), and
- the CLS (and CLS + mean patch token) that `clasp embed` writes for the same crops.
The view comes from the annotated keypoints, as the pose plugin's blind level reads it
(`plugins/pose/src/blind.rs`).

    python scripts/diagnostics/view_readability.py crops runs/quickstart/data/pose /tmp/view
    clasp embed --checkpoint runs/quickstart/pretrain-clasp/checkpoints/step_00000471 \
        --images /tmp/view/crops --task part --out /tmp/view/clasp.safetensors
    python scripts/diagnostics/view_readability.py read /tmp/view clasp [more embeddings]

Runs in a venv outside the repository (numpy, pillow, scikit-learn, safetensors).
"""
import json
import sys

import numpy as np
from PIL import Image

VIEWS = ["front", "back", "facing left", "facing right"]
SIDE_SPREAD = 0.05  # as blind.rs: shoulder spread (of the box width) below which it is a side view


def crops(pose_dir, out):
    import os

    os.makedirs(f"{out}/crops", exist_ok=True)
    labels = {}
    for split in ["train", "val", "test"]:
        d = json.load(open(f"{pose_dir}/annotations/person_keypoints_{split}.json"))
        images = {i["id"]: i for i in d["images"]}
        for a in d["annotations"]:
            x, y, w, h = a["bbox"]
            cx, cy = x + w / 2, y + h / 2
            bh = max(h, 2 * w) * 1.25
            box = (cx - bh / 4, cy - bh / 2, cx + bh / 4, cy + bh / 2)
            name = f"{split}_{a['id']:05d}.png"
            Image.open(f"{pose_dir}/images/{images[a['image_id']]['file_name']}").convert(
                "RGB"
            ).crop(tuple(int(round(b)) for b in box)).resize((64, 128)).save(
                f"{out}/crops/{name}"
            )
            labels[name] = {"split": split, "view": view_of(a["keypoints"], box[2] - box[0])}
    json.dump(labels, open(f"{out}/views.json", "w"))
    print(f"{len(labels)} crops in {out}/crops")


def view_of(k, box_width):
    nose, left, right = k[0:3], k[15:18], k[18:21]
    if left[2] <= 0 or right[2] <= 0:
        return None
    spread = (left[0] - right[0]) / box_width
    if spread > SIDE_SPREAD:
        return 0
    if spread < -SIDE_SPREAD:
        return 1
    return 2 if nose[2] > 0 and nose[0] < (left[0] + right[0]) / 2 else 3


def accuracy(x, y):
    """Mean and standard deviation over the folds, at the C with the best mean."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    scores = [
        cross_val_score(
            make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000)), x, y, cv=folds
        )
        for c in [0.001, 0.01, 0.1, 1.0]
    ]
    best = max(scores, key=np.mean)
    return f"{best.mean():.3f} ± {best.std():.3f}"


def majority(y):
    return np.bincount(y).max() / len(y)


def report(title, features, names, views):
    x = np.array([features[n] for n in names])
    y = np.array([views[n] for n in names])
    front_back, sides = y <= 1, y >= 2
    print(
        f"{title}: 4 views {accuracy(x, y)}, front vs back {accuracy(x[front_back], y[front_back])}, "
        f"facing left vs right {accuracy(x[sides], y[sides])}"
    )


def read(out, embeddings):
    from safetensors.numpy import load_file

    labels = json.load(open(f"{out}/views.json"))
    names = sorted(n for n, l in labels.items() if l["view"] is not None and l["split"] != "test")
    views = {n: labels[n]["view"] for n in names}
    counts = np.bincount([views[n] for n in names], minlength=4)
    y = np.array([views[n] for n in names])
    print(f"{len(names)} people ({', '.join(f'{c} {v}' for v, c in zip(VIEWS, counts))}); "
          f"always the commonest view: 4 views {majority(y):.3f}, front vs back "
          f"{majority(y[y <= 1]):.3f}, facing left vs right {majority(y[y >= 2] - 2):.3f}; "
          "accuracies are mean ± standard deviation over 5 folds")
    for size in [(16, 32), (32, 64), (64, 128)]:
        pixels = {
            n: np.asarray(Image.open(f"{out}/crops/{n}").resize(size), dtype=np.float32).ravel()
            for n in names
        }
        report(f"pixels {size[0]}x{size[1]}", pixels, names, views)
    for e in embeddings:
        t = load_file(f"{out}/{e}.safetensors")
        files = [p.rsplit("/", 1)[-1] for p in open(f"{out}/{e}.safetensors.images.txt").read().split()]
        cls = dict(zip(files, t["cls"]))
        both = {n: np.concatenate([c, m]) for n, c, m in zip(files, t["cls"], t["patch_mean"])}
        report(f"{e} CLS", cls, names, views)
        report(f"{e} CLS + mean token", both, names, views)


if __name__ == "__main__":
    if sys.argv[1] == "crops":
        crops(sys.argv[2], sys.argv[3])
    else:
        read(sys.argv[2], sys.argv[3:])
