#!/usr/bin/env bash
# Side-by-side speed of clasp-rs (candle) and PyTorch eager on this machine, in one run, as one
# table: training step and inference of the ViT presets (plain, PC-MoE; inference also PC-MoE
# with the task's gates folded, compared with PyTorch running the unfolded model), and, with
# LABEL=1, labelling with a ViT-B/16-sized CLIP (scripts/bench/label_compare.sh).
#   scripts/bench/compare.sh [presets] [batch] [steps]      e.g. compare.sh "nano small" 32 5
# PYTHON: a venv with torch 2.15.0 (CPU) and timm 1.0.31 (default ../venv/bin/python);
# CLASP: the release binary (default target/release/clasp, built if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
presets=${1:-"nano small"} batch=${2:-32} steps=${3:-5}
python=${PYTHON:-../venv/bin/python}
clasp=${CLASP:-target/release/clasp}
[ -x "$clasp" ] || cargo build --release -q -p clasp-core --bin clasp
threads=$(nproc)
echo "# $(date -u +%Y-%m-%d) · $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) · $threads threads · batch $batch, 256x128"
printf '%-6s %-6s %-8s %12s %12s %8s %10s %10s\n' mode preset variant "ours img/s" "torch img/s" ratio "ours MiB" "torch MiB"
for preset in $presets; do
  for mode in train infer; do
    ours=$("$clasp" bench "$mode" --preset "$preset" --batch "$batch" --steps "$steps" 2>/dev/null)
    torch=$("$python" scripts/bench/torch_vit.py --mode "$mode" --preset "$preset" --batch "$batch" --steps "$steps")
    for v in plain pcmoe folded; do
      a=$(awk -v v=$v '$1 == v {print $3, $5}' <<<"$ours")
      [ -n "$a" ] || continue
      # PyTorch has no folded model: the folded row is compared with PyTorch running PC-MoE.
      ref=$v; [ "$v" = folded ] && ref=pcmoe
      b=$(awk -v v=$ref '$1 == v {print $3, $5}' <<<"$torch")
      read -r ai am <<<"$a"; read -r bi bm <<<"$b"
      awk -v m=$mode -v p=$preset -v v=$v -v ai="$ai" -v bi="$bi" -v am="$am" -v bm="$bm" \
        'BEGIN { printf "%-6s %-6s %-8s %12.1f %12.1f %7.2fx %10.0f %10.0f\n", m, p, v, ai, bi, ai / bi, am, bm }'
    done
  done
done
if [ "${LABEL:-0}" = 1 ]; then
  bash scripts/bench/label_compare.sh "$python" 128 | tail -3
fi
