#!/usr/bin/env bash
# Installs the dependencies, builds the engine (CUDA code too when nvcc is present), runs
# every test, then a short fuzzing run of every reader. Usage: scripts/test.sh [extra ctest
# arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >build-configure.log || { cat build-configure.log; exit 1; }
grep "engine:" build-configure.log
cmake --build build -j"$(nproc)"
# onnx and onnxruntime (PyPI) for the ONNX tests, in a virtual environment of their own.
if grep -q "ONNX export and import: ON" build-configure.log; then
  scripts/onnx-venv.sh build/onnx-venv >/dev/null
fi
(cd build && ctest --output-on-failure -j"$(nproc)" "$@")
# Every fuzz target for 20 s (clang, libFuzzer, ASan, UBSan; fixed seed): see scripts/fuzz.sh.
FUZZ_SEED=1 scripts/fuzz.sh 20
