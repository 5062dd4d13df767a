#!/usr/bin/env bash
# `clasp bench model` and its PyTorch twin in one run, then the speed ratios.
#   scripts/bench/compare_model.sh [preset] [batch] [steps]   (PYTHON=../venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/../.."
preset=${1:-small} batch=${2:-32} steps=${3:-5}
python=${PYTHON:-../venv/bin/python}
clasp=${CLASP:-target/release/clasp}
ours=$("$clasp" bench model --preset "$preset" --batch "$batch" --steps "$steps")
torch=$("$python" scripts/bench/torch_vit.py --preset "$preset" --batch "$batch" --steps "$steps")
echo "== clasp-rs (candle)"; echo "$ours"
echo "== PyTorch"; echo "$torch"
for v in plain pcmoe; do
  a=$(echo "$ours" | awk -v v=$v '$1 == v {print $3}')
  b=$(echo "$torch" | awk -v v=$v '$1 == v {print $3}')
  awk -v v=$v -v a="$a" -v b="$b" 'BEGIN {printf "%-6s clasp-rs %s img/s, PyTorch %s img/s, ratio clasp-rs/PyTorch %.2f\n", v, a, b, a / b}'
done
