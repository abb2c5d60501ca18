#!/usr/bin/env bash
# Prepares what scripts/gpu-check.sh needs on the GPU machine, which has CUDA, cuDNN (in
# PyTorch's Python packages), CMake and PyTorch but no package access: downloads the Debian
# packages of the engine's build dependencies (and the libraries they load) into .gpu-deps/,
# which git ignores and the device call carries:
#   scripts/gpu-deps.sh            (here, once)
#   device run: carry [".gpu-deps"], command "scripts/gpu-check.sh"
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(
  libprotobuf-dev libprotobuf32 libprotobuf-lite32 protobuf-compiler libprotoc32
  libgoogle-glog-dev libgoogle-glog0v6 libunwind8 libunwind-dev
  libgflags-dev libgflags2.2
  libopenblas-dev libopenblas-pthread-dev libopenblas0-pthread libopenblas0 libgfortran5
  libgtest-dev googletest
)
rm -rf .gpu-deps && mkdir -p .gpu-deps
(cd .gpu-deps && apt-get download "${packages[@]}")
grep -qx "/.gpu-deps/" .git/info/exclude 2>/dev/null || echo "/.gpu-deps/" >> .git/info/exclude
du -sh .gpu-deps
