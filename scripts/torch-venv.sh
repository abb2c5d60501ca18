#!/usr/bin/env bash
# A virtual environment with PyTorch, torchvision and the ONNX tools from PyPI, for the
# benchmarks against PyTorch and for remaking tests/onnx/pytorch (several GB: PyPI's Linux torch
# brings the CUDA libraries). Made once; prints its python.
# Usage: scripts/torch-venv.sh [DIR]   (default build/torch-venv)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build/torch-venv}
python=$dir/bin/python
if ! [ -x "$python" ] || ! "$python" -c "import torch, torchvision, onnxscript" 2>/dev/null; then
  /usr/bin/python3 -m venv "$dir" >&2
  "$python" -m pip install -q --disable-pip-version-check torch torchvision onnxscript \
    "onnx==1.17.0" "onnxruntime==1.20.1" >&2
fi
echo "$python"
