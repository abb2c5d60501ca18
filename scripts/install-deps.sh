#!/usr/bin/env bash
# Installs the Debian packages that building and testing the engine need.
# Idempotent: when everything is present it only checks and returns.
set -euo pipefail

packages=(
  build-essential cmake ccache pkg-config
  protobuf-compiler libprotobuf-dev
  libgoogle-glog-dev libgflags-dev
  libopenblas-dev libopenblas-openmp-dev libdnnl-dev
  libgtest-dev
  liblmdb-dev libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev zlib1g-dev
  openmpi-bin libopenmpi-dev libonnx-dev
  pybind11-dev python3-dev python3-numpy python3-protobuf python3-pytest python3-matplotlib
  python3-pydot python3-pil graphviz python3-venv python3-pip python3-setuptools python3-wheel
  clang libclang-rt-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
