#!/usr/bin/env bash
# On the GPU machine, which has no Rust: issue #8's CUDA checks with the binary that
# scripts/device/build.sh built here, all in one call:
#   1. the GPU (nvidia-smi) and the CUDA libraries the binary links, found in python3's nvidia-*
#      wheels (PyTorch's cu13 environment carries cudart, cuBLAS and cuRAND; the driver libcuda);
#   2. `clasp device-check` on the GPU: every custom op against its CPU reference (values and
#      gradients), then PC-MoE training steps whose losses and update must equal the CPU's;
#   3. the benchmark beside PyTorch eager on the same GPU (scripts/bench/compare.sh: ViT-S and
#      ViT-B, train and inference, f32 both sides; PyTorch under bf16 autocast as a last column).
# Through the device tool: carry ["dist/cuda"], command "bash scripts/device/check.sh",
# timeout_s 540. Everything printed also goes to $OUT/check.log. DEVICE=cpu CLASP=target/release/clasp
# runs the same script here as a dry run.
# Env: CLASP (default: dist/cuda/clasp.xz unpacked to /tmp), PYTHON (python3), DEVICE (cuda),
# PRESETS ("small base"), BATCH (32), STEPS (10).
set -uo pipefail
cd "$(dirname "$0")/../.."
clasp=${CLASP:-}
python=${PYTHON:-python3}
device=${DEVICE:-cuda}
log=${OUT:-/tmp}/check.log

heading() { printf '\n== %s\n' "$*"; }

main() {
  local failed=0
  heading "machine"
  date -u
  if command -v nvidia-smi >/dev/null; then nvidia-smi; else echo "nvidia-smi: not found"; fi

  heading "CUDA libraries"
  local dirs
  dirs=$("$python" - <<'PY'
import glob, os, sys
try:
    import nvidia
    roots = list(nvidia.__path__)
except ImportError:
    roots = []
found = {}
for root in roots:
    # libnccl: only a FEATURES=cuda,nccl build (scripts/device/build.sh) links it.
    for name in ("libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10",
                 "libnccl.so.2"):
        for f in sorted(glob.glob(os.path.join(root, "**", name + "*"), recursive=True)):
            found.setdefault(name, f)
for name in sorted(found):
    print("found", found[name], file=sys.stderr)
print(":".join(sorted({os.path.dirname(f) for f in found.values()})))
PY
  )
  export LD_LIBRARY_PATH="${dirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  if [ -z "$clasp" ]; then
    if [ ! -f dist/cuda/clasp.xz ]; then
      echo "dist/cuda/clasp.xz: missing (build it here with scripts/device/build.sh, carry dist/cuda)"
      return 1
    fi
    clasp=/tmp/clasp-cuda/clasp
    mkdir -p /tmp/clasp-cuda
    "$python" -c 'import lzma, shutil, sys
with lzma.open(sys.argv[1]) as src, open(sys.argv[2], "wb") as dst: shutil.copyfileobj(src, dst)' \
      dist/cuda/clasp.xz "$clasp" || return 1
    chmod +x "$clasp"
    echo "unpacked dist/cuda/clasp.xz to $clasp"
  fi
  if ldd "$clasp" | grep -q 'libcuda.so.1 => not found'; then
    # The driver's libcuda: torch dlopens it from the loader path; look where drivers live.
    local d
    for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64; do
      if [ -e "$d/libcuda.so.1" ]; then
        export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"
        echo "libcuda.so.1 found in $d"
        break
      fi
    done
  fi
  ldd "$clasp" | grep -E 'libcu|libnccl|not found' || echo "(links no CUDA library: a CPU build)"
  if ldd "$clasp" | grep -q 'not found'; then
    echo "a library the binary links was not found"
    failed=1
  fi

  heading "device-check (run.device=$device)"
  "$clasp" --set "run.device=$device" device-check || failed=1
  "$clasp" --set "run.device=$device" device-check --preset small --batch 8 --steps 5 || failed=1

  heading "benchmark beside PyTorch"
  local bf16=1
  [ "$device" = cpu ] && bf16=0
  DEVICE=$device BF16=$bf16 PYTHON=$python CLASP=$clasp \
    bash scripts/bench/compare.sh "${PRESETS:-small base}" "${BATCH:-32}" "${STEPS:-10}" || failed=1

  heading "$([ "$failed" = 0 ] && echo "all checks passed" || echo "SOME CHECKS FAILED")"
  return "$failed"
}

main 2>&1 | tee "$log"
exit "${PIPESTATUS[0]}"
