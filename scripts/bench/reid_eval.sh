#!/usr/bin/env bash
# Market-1501 evaluation, ours beside torchreid's, at one size (default: a 2k × 8k slice both can
# run), then ours alone at the MSMT17-like 20k × 80k (torchreid's full distance matrix alone would
# be 6 GiB there, its argsort indices 12 GiB more).
#   bash scripts/bench/reid_eval.sh PYTHON RANK_PY [QUERIES GALLERY DIM]
# PYTHON: a venv with numpy; RANK_PY: torchreid-0.2.5/torchreid/reid/metrics/rank.py (sdist).
set -euo pipefail
cd "$(dirname "$0")/../.."
py=$1 rank=$2 q=${3:-2000} g=${4:-8000} d=${5:-768}
cargo build --release -q -p clasp-plugin-reid --example bench_ranking
bin=target/release/examples/bench_ranking
ours=$("$bin" "$q" "$g" "$d")
ref=$("$py" scripts/bench/reid_eval_torchreid.py "$rank" "$q" "$g" "$d")
echo "$ours"
echo "$ref"
secs() { sed -E 's/.*: ([0-9.]+) s,.*/\1/' <<<"$1"; }
rss() { sed -E 's/.*peak RSS ([0-9]+) MiB.*/\1/' <<<"$1"; }
awk -v a="$(secs "$ours")" -v b="$(secs "$ref")" -v m="$(rss "$ours")" -v n="$(rss "$ref")" \
  'BEGIN { printf "ratio (torchreid / ours): time %.2fx, peak memory %.2fx\n", b / a, n / m }'
echo "20000 × 80000 × 768, ours alone:"
"$bin" 20000 80000 768
