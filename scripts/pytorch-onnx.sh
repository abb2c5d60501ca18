#!/usr/bin/env bash
# Remakes the PyTorch-made ONNX files in tests/onnx/pytorch (torchvision's AlexNet, ResNet-18 and
# MobileNetV2 through torch.onnx.export) in scripts/torch-venv.sh's environment, with
# tests/onnx/pytorch/make_models.py. Not part of the tests, which read the committed files.
# Usage: scripts/pytorch-onnx.sh [VENV]   (default build/torch-venv)
set -euo pipefail
cd "$(dirname "$0")/.."
python=$(scripts/torch-venv.sh "${1:-build/torch-venv}")
"$python" -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
"$python" tests/onnx/pytorch/make_models.py tests/onnx/pytorch
