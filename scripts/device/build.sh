#!/usr/bin/env bash
# Here (the machine with Rust): builds the release `clasp` with `--features cuda` against the
# CUDA 13 toolchain from PyPI (scripts/cuda/setup.sh) and puts it, stripped and xz-compressed
# (62 MB → 8 MB: candle's PTX kernels are text, and the device tool carries 64 MiB in all), in
# dist/cuda/clasp.xz — what scripts/device/check.sh runs on the GPU machine, which has no Rust:
#   bash scripts/device/build.sh
#   device run: carry ["dist/cuda"], command "bash scripts/device/check.sh", timeout_s 540
# FEATURES (default cuda) are the binary's cargo features: FEATURES=cuda,nccl adds NCCL (linked:
# check.sh finds libnccl.so.2 in the GPU machine's nvidia wheels) and with it device-check's
# world-of-one NCCL self-test.
# CUDA_COMPUTE_CAP picks the GPU generation the kernels are built for (default 90: H100/H200);
# CLASP_CUDA_TOOLKIT the toolkit (default 13.0: the GPU machine's driver is R580, CUDA 13.0, and
# loads no PTX newer than 13.0's nvcc writes).
set -euo pipefail
cd "$(dirname "$0")/../.."
toolkit=${CLASP_CUDA_TOOLKIT:-13.0}
cache=${CLASP_CUDA_CACHE:-$HOME/.cache/clasp-cuda-$toolkit}
CLASP_CUDA_TOOLKIT=$toolkit CLASP_CUDA_CACHE=$cache bash scripts/cuda/setup.sh
# shellcheck source=/dev/null
source "$cache/env.sh"
CARGO_TARGET_DIR="$cache/target" cargo build --release -p clasp-core --features "${FEATURES:-cuda}" --bin clasp
mkdir -p dist/cuda
bin=$(mktemp)
cp "$cache/target/release/clasp" "$bin"
strip "$bin"
echo "clasp (CUDA $toolkit, compute capability $CUDA_COMPUTE_CAP): $(du -h "$bin" | cut -f1) stripped; links:"
ldd "$bin" | grep -E 'libcu|libnccl|not found' || true
xz -9 -T0 -c "$bin" >dist/cuda/clasp.xz
rm -f "$bin"
echo "dist/cuda/clasp.xz: $(du -h dist/cuda/clasp.xz | cut -f1)"
