#!/usr/bin/env bash
# Sets up what `cargo build --features cuda` needs on a machine without a CUDA toolkit: Debian has
# none, but the CUDA 13 wheels on PyPI carry nvcc, nvvm, the runtime, nvrtc, cuBLAS and cuRAND.
# It adds unversioned .so links and a libcuda link stub (the driver provides the real libcuda at
# run time), then writes the environment to $CLASP_CUDA_CACHE/env.sh for the caller to source:
#
#   bash scripts/cuda/setup.sh && source ~/.cache/clasp-cuda/env.sh
#   cargo build -p clasp-core --features cuda
#
# Idempotent: a second run reuses the venv and the stub.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cache=${CLASP_CUDA_CACHE:-$HOME/.cache/clasp-cuda}
venv=$cache/venv
# CUDA 13.4: the newest toolkit cudarc 0.19 (candle 0.11's) knows; it reads the version off nvcc.
wheels=(
  nvidia-cuda-nvcc==13.4.92 nvidia-nvvm==13.4.92 nvidia-cuda-crt==13.4.92
  nvidia-cuda-runtime==13.4.92 nvidia-cuda-nvrtc==13.4.92 nvidia-cublas==13.8.2.12
  nvidia-curand==10.4.4.72 nvidia-cuda-cccl==13.3.5.0.6
)
mkdir -p "$cache"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/pip" freeze 2>/dev/null | grep -q '^nvidia-cuda-nvcc==13.4.92$'; then
  "$venv/bin/pip" install --quiet "${wheels[@]}"
fi
root=$("$venv/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')
[ -x "$root/bin/nvcc" ] || { echo "nvcc not found under $root" >&2; exit 1; }

# Unversioned names for the linker (-lcublas etc.); the wheels ship only libX.so.N.
for lib in "$root"/lib/lib*.so.*; do
  base=$(basename "$lib"); plain=${base%%.so.*}.so
  ln -sf "$base" "$root/lib/$plain"
done
# nvcc looks for nvvm/ and the crt headers relative to its own bin/.
[ -e "$root/bin/../nvvm" ] || { echo "nvvm missing under $root" >&2; exit 1; }

# libcuda link stub: every cu* symbol cudarc's driver bindings declare, as empty functions.
stub=$cache/stub
if [ ! -e "$stub/libcuda.so" ]; then
  (cd "$here" && cargo fetch --quiet)
  bindings=$(find "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.*/src/driver/sys -name '*.rs' | head -n 1)
  [ -n "$bindings" ] || { echo "cudarc driver bindings not found (cargo fetch failed?)" >&2; exit 1; }
  mkdir -p "$stub"
  grep -ohE '^ +fn cu[A-Za-z0-9_]+\(' "$bindings" | sed -E 's/^ +fn //; s/\($//' | sort -u |
    sed 's/.*/void &(void) {}/' > "$stub/libcuda_stub.c"
  cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stub/libcuda.so" "$stub/libcuda_stub.c"
  ln -sf libcuda.so "$stub/libcuda.so.1"
fi

cat > "$cache/env.sh" <<ENV
export CUDA_HOME="$root" CUDA_ROOT="$root" CUDA_PATH="$root"
export PATH="$root/bin:\$PATH"
export LIBRARY_PATH="$root/lib:$stub\${LIBRARY_PATH:+:\$LIBRARY_PATH}"
export LD_LIBRARY_PATH="$root/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export CUDA_COMPUTE_CAP=\${CUDA_COMPUTE_CAP:-90}
ENV
echo "CUDA toolchain ready: $root ($("$root/bin/nvcc" --version | tail -n 1)); source $cache/env.sh"
