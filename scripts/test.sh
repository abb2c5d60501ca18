#!/usr/bin/env bash
# Installs the dependencies, builds the engine (CUDA code too when nvcc is present) and runs
# every test. Usage: scripts/test.sh [extra ctest arguments]
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
cd build && ctest --output-on-failure -j"$(nproc)" "$@"
