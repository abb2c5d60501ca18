#!/usr/bin/env bash
# Fully connected passes at AlexNet's shapes through oneDNN's inner_product primitives, oneDNN's
# matmul (what InnerProductLayer's oneDNN path runs) and OpenBLAS (the reference path), timed
# in the same run (bench/fc_primitives.cpp says how). Prints one table and writes it, with the
# processor, to bench/results/fc_primitives.txt.
# Usage: bench/fc_primitives.sh [batch]    Environment: THREADS (2), ROUNDS (10).
# Needs the build dependencies (scripts/install-deps.sh): g++, libdnnl-dev, libopenblas-dev.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${THREADS:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The OpenMP build of OpenBLAS, as the engine links it (CMakeLists.txt says why).
blas=/usr/lib/x86_64-linux-gnu/openblas-openmp
[ -d "$blas" ] || blas=/usr/lib/x86_64-linux-gnu/openblas-pthread
blas_include=/usr/include/x86_64-linux-gnu/$(basename "$blas")
g++ -O2 -std=c++17 -I"$blas_include" bench/fc_primitives.cpp -o "$work/fc_primitives" \
  -L"$blas" -Wl,-rpath,"$blas" -lopenblas -ldnnl
mkdir -p bench/results
{
  echo "processor: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'),"\
       "$(nproc) cores, OMP_NUM_THREADS=$OMP_NUM_THREADS,"\
       "$(grep -qw avx512f /proc/cpuinfo && echo AVX-512 || echo 'AVX2, no AVX-512')"
  "$work/fc_primitives" "$@"
} | tee bench/results/fc_primitives.txt
