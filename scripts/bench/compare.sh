#!/usr/bin/env bash
# Side-by-side speed of clasp-rs (candle) and PyTorch eager on this machine, in one run, as one
# table: training step and inference of the ViT presets (plain, PC-MoE; inference also PC-MoE
# with the task's gates folded, compared with PyTorch running the unfolded model), and, with
# LABEL=1, labelling with a ViT-B/16-sized CLIP (scripts/bench/label_compare.sh).
#   scripts/bench/compare.sh [presets] [batch] [steps]      e.g. compare.sh "nano small" 32 5
# PYTHON: a venv with torch 2.15.0 (CPU) and timm 1.0.31 (default ../venv/bin/python);
# CLASP: the release binary (default target/release/clasp, built if missing);
# DEVICE: cpu (default) or cuda — both sides run there; on cuda the memory columns are the GPU's
# peak use as nvidia-smi samples it while each process runs (the same meter for both), and BF16=1
# adds two last columns: ours with `run.precision = "bf16"` and PyTorch under bf16 autocast
# (on the CPU candle widens bf16 products to f32, so ours measures the numerics, not a speed-up).
# Each variant runs in a process of its own, so its peak memory is its own.
set -euo pipefail
cd "$(dirname "$0")/../.."
presets=${1:-"nano small"} batch=${2:-32} steps=${3:-5}
python=${PYTHON:-../venv/bin/python}
clasp=${CLASP:-target/release/clasp}
device=${DEVICE:-cpu}
bf16=${BF16:-0}
[ -x "$clasp" ] || cargo build --release -q -p clasp-core --bin clasp
cuda=0
[[ $device == cuda* ]] && cuda=1

# Runs a benchmark process that prints one JSON line; prints "images/s peak-MiB". On CUDA the
# peak is nvidia-smi's largest memory.used while the process ran, less what was used before.
measure() {
  local out peak=""
  if [ "$cuda" = 1 ]; then
    local log base pid
    log=$(mktemp)
    base=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 50 >"$log" &
    pid=$!
    out=$("$@" | tail -1)
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    peak=$(awk -v b="$base" 'NR == 1 || $1 > m { m = $1 } END { print m - b }' "$log")
    rm -f "$log"
  else
    out=$("$@" | tail -1)
  fi
  "$python" -c 'import json, sys; r = json.loads(sys.argv[1]); p = sys.argv[2]
print(r["images_per_s"], p if p else r["peak_rss_mib"])' "$out" "$peak"
}

memory="MiB"; [ "$cuda" = 1 ] && memory="GPU MiB"
echo "# $(date -u +%Y-%m-%d) · $device · $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) · $(nproc) threads · batch $batch, 256x128"
[ "$cuda" = 1 ] && echo "# $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)"
printf '%-6s %-6s %-8s %12s %12s %8s %12s %12s' mode preset variant "ours img/s" "torch img/s" ratio "ours $memory" "torch $memory"
[ "$bf16" = 1 ] && printf ' %16s %16s' "ours bf16 img/s" "torch bf16 img/s"
printf '\n'
for preset in $presets; do
  for mode in train infer; do
    variants="plain pcmoe"; [ "$mode" = infer ] && variants="plain pcmoe folded"
    declare -A torch_row=() torch_bf16_row=()
    for v in $variants; do
      ours=$(measure "$clasp" --set "run.device=$device" bench "$mode" --preset "$preset" \
        --batch "$batch" --steps "$steps" --variant "$v")
      # PyTorch has no folded model: the folded row is compared with PyTorch running PC-MoE.
      ref=$v; [ "$v" = folded ] && ref=pcmoe
      torch_args=(scripts/bench/torch_vit.py --device "$device" --mode "$mode" --preset "$preset"
        --batch "$batch" --steps "$steps" --variant "$ref")
      [ -n "${torch_row[$ref]:-}" ] || torch_row[$ref]=$(measure "$python" "${torch_args[@]}")
      ours_bf16=""
      if [ "$bf16" = 1 ]; then
        ours_bf16=$(measure "$clasp" --set "run.device=$device" --set 'run.precision="bf16"' \
          bench "$mode" --preset "$preset" --batch "$batch" --steps "$steps" --variant "$v")
        if [ -z "${torch_bf16_row[$ref]:-}" ]; then
          torch_bf16_row[$ref]=$(measure "$python" "${torch_args[@]}" --bf16)
        fi
      fi
      read -r ai am <<<"$ours"; read -r bi bm <<<"${torch_row[$ref]}"
      awk -v m="$mode" -v p="$preset" -v v="$v" -v ai="$ai" -v bi="$bi" -v am="$am" -v bm="$bm" \
        'BEGIN { printf "%-6s %-6s %-8s %12.1f %12.1f %7.2fx %12.0f %12.0f", m, p, v, ai, bi, ai / bi, am, bm }'
      if [ "$bf16" = 1 ]; then
        read -r oi _ <<<"$ours_bf16"; read -r ci _ <<<"${torch_bf16_row[$ref]}"
        printf ' %16.1f %16.1f' "$oi" "$ci"
      fi
      printf '\n'
    done
  done
done
if [ "${LABEL:-0}" = 1 ]; then
  bash scripts/bench/label_compare.sh "$python" 128 | tail -3
fi
