#!/usr/bin/env bash
# Sets up what `cargo build --features cuda` needs on a machine without a CUDA toolkit: Debian has
# none, but the CUDA 13 wheels on PyPI carry nvcc, nvvm, the runtime, nvrtc, cuBLAS and cuRAND.
# It adds unversioned .so links and a libcuda link stub (the driver provides the real libcuda at
# run time), then writes the environment to $CLASP_CUDA_CACHE/env.sh for the caller to source:
#
#   bash scripts/cuda/setup.sh && source ~/.cache/clasp-cuda/env.sh
#   cargo build -p clasp-core --features cuda     # or --features nccl (with mpi: MPI-launched jobs)
#
# CLASP_CUDA_TOOLKIT picks the toolkit: 13.4 (default, what CI compiles with: the newest cudarc
# 0.19 — candle 0.11's — knows; it reads the version off nvcc) or 13.0, for binaries that run on a
# driver of the CUDA 13.0 generation (R580): nvcc 13.4 writes PTX ISA 9.4, which an R580 driver
# cannot load. 13.0's default cache is ~/.cache/clasp-cuda-13.0.
# Idempotent: a second run reuses the venv and the stub.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
toolkit=${CLASP_CUDA_TOOLKIT:-13.4}
case $toolkit in
  13.4)
    cache=${CLASP_CUDA_CACHE:-$HOME/.cache/clasp-cuda}
    wheels=(
      nvidia-cuda-nvcc==13.4.92 nvidia-nvvm==13.4.92 nvidia-cuda-crt==13.4.92
      nvidia-cuda-runtime==13.4.92 nvidia-cuda-nvrtc==13.4.92 nvidia-cublas==13.8.2.12
      nvidia-curand==10.4.4.72 nvidia-cuda-cccl==13.3.5.0.6
    ) ;;
  13.0)
    cache=${CLASP_CUDA_CACHE:-$HOME/.cache/clasp-cuda-13.0}
    wheels=(
      nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88
      nvidia-cuda-runtime==13.0.96 nvidia-cuda-nvrtc==13.0.88 nvidia-cublas==13.0.2.14
      nvidia-curand==10.4.0.35 nvidia-cuda-cccl==13.0.85
    ) ;;
  *) echo "CLASP_CUDA_TOOLKIT=$toolkit: use 13.4 or 13.0" >&2; exit 1 ;;
esac
venv=$cache/venv
mkdir -p "$cache"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/pip" freeze 2>/dev/null | grep -qx "${wheels[0]}"; then
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

# Link stubs: a library whose every symbol cudarc's bindings declare (`fn <prefix>…(`) is an
# empty function, under the real library's SONAME (the driver, or PyPI's / the system's NCCL,
# provides the real one through LD_LIBRARY_PATH at run time).
#   link_stub NAME SONAME BINDINGS-DIR (under cudarc's src/) PREFIX
stub=$cache/stub
link_stub() {
  local name=$1 soname=$2 dir=$3 prefix=$4 bindings
  [ -e "$stub/$name.so" ] && return 0
  (cd "$here" && cargo fetch --quiet)
  bindings=$(find "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.*/src/"$dir" -name '*.rs' | head -n 1)
  [ -n "$bindings" ] || { echo "cudarc $dir bindings not found (cargo fetch failed?)" >&2; exit 1; }
  mkdir -p "$stub"
  grep -ohE "^ +(pub )?fn $prefix[A-Za-z0-9_]+\\(" "$bindings" | sed -E 's/^ +(pub )?fn //; s/\($//' |
    sort -u | sed 's/.*/void &(void) {}/' > "$stub/${name}_stub.c"
  cc -shared -fPIC -Wl,-soname,"$soname" -o "$stub/$name.so" "$stub/${name}_stub.c"
  ln -sf "$name.so" "$stub/$soname"
}
link_stub libcuda libcuda.so.1 driver/sys cu
# `--features nccl`: cudarc links NCCL.
link_stub libnccl libnccl.so.2 nccl/sys nccl

cat > "$cache/env.sh" <<ENV
export CUDA_HOME="$root" CUDA_ROOT="$root" CUDA_PATH="$root"
export PATH="$root/bin:\$PATH"
export LIBRARY_PATH="$root/lib:$stub\${LIBRARY_PATH:+:\$LIBRARY_PATH}"
export LD_LIBRARY_PATH="$root/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export CUDA_COMPUTE_CAP=\${CUDA_COMPUTE_CAP:-90}
ENV
echo "CUDA toolchain ready: $root ($("$root/bin/nvcc" --version | tail -n 1)); source $cache/env.sh"
