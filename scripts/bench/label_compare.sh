#!/usr/bin/env bash
# Labelling throughput with a ViT-B/16-sized random CLIP: `clasp label` beside transformers on the
# same person crops, same batch, same machine, one run.
#   bash scripts/bench/label_compare.sh PYTHON [N_IMAGES]
# PYTHON: a venv with torch 2.15.0 (CPU) + transformers 4.57.1 + pillow.
set -euo pipefail
cd "$(dirname "$0")/../.."
py=$1 n=${2:-128}
work=${BENCH_DIR:-/tmp/clasp-label-bench}
mkdir -p "$work"
cargo build --release -q -p clasp-core --bin clasp
clasp=target/release/clasp
if [ ! -d "$work/synth" ]; then
  "$clasp" synth --out "$work/synth" --identities $((n / 4)) --images-per-id 4 >/dev/null
fi
mkdir -p "$work/crops"
find "$work/synth/reid/bounding_box_train" "$work/synth/reid/bounding_box_test" -name '*.jpg' | sort | head -n "$n" \
  | xargs -I{} cp {} "$work/crops/"
ref=$("$py" scripts/bench/label_transformers.py "$work/vit-b16" "$work/crops" 32 | tail -1)
rm -rf "$work/cache"
ours=$("$clasp" label --teacher "$work/vit-b16" --images "$work/crops" --out "$work/cache" \
  --set label.batch_size=32 --set 'label.img_size=[256, 128]' | grep 'images/s')
echo "$ref"
echo "clasp label: $ours"
rate() { grep -oE '[0-9.]+ images/s' <<<"$1" | head -1 | cut -d' ' -f1; }
awk -v a="$(rate "$ours")" -v b="$(rate "$ref")" 'BEGIN { printf "ratio ours / transformers: %.2fx\n", a / b }'
