#!/usr/bin/env bash
# Data-parallel fine-tuning on this machine: one epoch of the attribute task with a ViT preset at
# 256×128, one process with batches of 2B on every core against `mpirun -np 2` with batches of B
# (the same steps, the same images per step), each rank on half the cores. Prints the epoch's
# training seconds and, for the ranks, the seconds spent in collectives (the gradient all-reduce
# and waiting for the slower rank).
#   scripts/bench/data_parallel.sh [preset] [B] [identities]     e.g. data_parallel.sh small 8 120
# CLASP: a release binary built with `--features mpi` (default target/release/clasp, built).
set -euo pipefail
cd "$(dirname "$0")/../.."
preset=${1:-small} batch=${2:-8} identities=${3:-120}
clasp=${CLASP:-target/release/clasp}
[ -n "${CLASP:-}" ] || cargo build --release -q --features mpi -p clasp-core --bin clasp \
  -p clasp-plugin-attribute
cores=$(nproc)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$clasp" synth --out "$work/data" --identities "$identities" --images-per-id 2 --size 256 128 \
  >/dev/null 2>&1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 CLASP_PLUGIN_PATH=target/release
sets=(--set "model.preset=\"$preset\"" --set "run.dir=\"$work/runs\"" --set finetune.epochs=1
  --set finetune.warmup_epochs=0)
# The epoch's line (`-v` shows it for one process too), less the progress bar.
epoch_line() {
  grep -a "fine-tuning \`attribute\`, epoch 1:" | sed 's/.*epoch 1: //' | sort | paste -sd ';'
}
one=$(RAYON_NUM_THREADS=$cores "$clasp" -v finetune --task attribute --data "$work/data/attributes" \
  "${sets[@]}" --set run.name=\"one\" --set "finetune.batch_size=$((2 * batch))" 2>&1 | epoch_line)
two=$(RAYON_NUM_THREADS=$((cores / 2 > 0 ? cores / 2 : 1)) mpirun -np 2 "$clasp" finetune \
  --task attribute --data "$work/data/attributes" "${sets[@]}" --set run.name=\"two\" \
  --set "finetune.batch_size=$batch" 2>&1 | epoch_line)
echo "preset $preset, 256x128, $(($(wc -l <"$work/data/attributes/train.csv") - 1)) training images, $cores cores"
echo "one process, batch $((2 * batch)), $cores threads: $one"
echo "two ranks, batch $batch each, $((cores / 2 > 0 ? cores / 2 : 1)) thread(s) each: $two"
