#!/usr/bin/env bash
# Remakes the PyTorch-made ONNX files in tests/onnx/pytorch (torchvision's AlexNet, ResNet-18 and
# MobileNetV2 through torch.onnx.export): a virtual environment with torch, torchvision and
# onnxscript from PyPI (several GB: PyPI's Linux torch brings the CUDA libraries), then
# tests/onnx/pytorch/make_models.py. Not part of the tests, which read the committed files.
# Usage: scripts/pytorch-onnx.sh [VENV]   (default build/torch-venv)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build/torch-venv}
python=$dir/bin/python
if ! [ -x "$python" ] || ! "$python" -c "import torch, torchvision, onnxscript" 2>/dev/null; then
  /usr/bin/python3 -m venv "$dir"
  "$python" -m pip install -q --disable-pip-version-check torch torchvision onnxscript \
    "onnx==1.17.0" "onnxruntime==1.20.1"
fi
"$python" -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
"$python" tests/onnx/pytorch/make_models.py tests/onnx/pytorch
