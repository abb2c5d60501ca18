#!/usr/bin/env bash
# Makes the virtual environment that checks ONNX files: onnx (its checker) and onnxruntime
# from PyPI, on top of Debian's Python, numpy and pytest (--system-site-packages).
# Usage: scripts/onnx-venv.sh [DIR]   (default build/onnx-venv); prints DIR's python.
# Idempotent: an environment that already imports both is left as it is.
set -euo pipefail
dir=${1:-build/onnx-venv}
python=$dir/bin/python
if [ -x "$python" ] && "$python" -c "import onnx, onnxruntime" 2>/dev/null; then
  echo "$python"
  exit 0
fi
/usr/bin/python3 -m venv --system-site-packages "$dir" >&2
"$python" -m pip install -q --disable-pip-version-check "onnx==1.17.0" "onnxruntime==1.20.1" >&2
"$python" -c "import onnx, onnxruntime" >&2
echo "$python"
