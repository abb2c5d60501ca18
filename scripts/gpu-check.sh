#!/usr/bin/env bash
# The device check, run on a machine with an NVIDIA GPU (CUDA toolkit, cuDNN, CMake, PyTorch;
# no package access). It installs nothing from the network: the Debian build dependencies
# travel with the call (prepare them here with scripts/gpu-deps.sh, then carry .gpu-deps):
#   device run: carry [".gpu-deps"], command "scripts/gpu-check.sh", timeout ~540 s
# Steps: unpack the dependencies, build for sm_90 (+PTX) without oneDNN and the data code,
# device query, the GPU test suite (parity, GPU gradient checks, synced memory; with two or more
# GPUs, multi_gpu_test's NCCL data and model parallelism) plus the CPU suite, then
# bench/gpu_alexnet.sh. Results go to $OUT (the device tool brings them back).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-check-out}
mkdir -p "$out"
exec > >(tee "$out/gpu-check.log") 2>&1
start=$(date +%s)
step() { echo; echo "== $* ($(( $(date +%s) - start )) s)"; }

step "dependencies"
prefix=/tmp/engine-deps
mkdir -p "$prefix"
[ -d .gpu-deps ] || { echo "no .gpu-deps folder: run scripts/gpu-deps.sh here and carry it"; exit 1; }
for deb in .gpu-deps/*.deb; do dpkg-deb -x "$deb" "$prefix"; done
lib="$prefix/usr/lib/x86_64-linux-gnu"
export LD_LIBRARY_PATH="$lib:$lib/openblas-pthread:${LD_LIBRARY_PATH:-}"
export PATH="$prefix/usr/bin:/usr/local/cuda/bin:$PATH"
# cuDNN: the toolkit's, else the one PyTorch ships in its Python packages.
cudnn_root=/usr/local/cuda
if [ ! -f /usr/local/cuda/include/cudnn.h ]; then
  cudnn_root=$(python3 -c 'import os, nvidia.cudnn as c; print(os.path.dirname(c.__file__))' 2>/dev/null || true)
  export LD_LIBRARY_PATH="$cudnn_root/lib:$LD_LIBRARY_PATH"
fi
echo "cuDNN from $cudnn_root"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/nvidia-smi.txt"

step "build (sm_90 + PTX)"
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DENGINE_CUDA=ON -DENGINE_ONEDNN=OFF \
  -DENGINE_CUDA_ARCHITECTURES="90-real;90-virtual" -DCMAKE_PREFIX_PATH="$prefix/usr" \
  -DCUDNN_ROOT="$cudnn_root" -DProtobuf_PROTOC_EXECUTABLE="$prefix/usr/bin/protoc" \
  -DLMDB_INCLUDE_DIR=NOTFOUND >"$out/cmake.log" 2>&1 || { tail -30 "$out/cmake.log"; exit 1; }
grep "engine:" "$out/cmake.log"
cmake --build build-gpu -j"$(nproc)" >"$out/build.log" 2>&1 || { grep -E "error" "$out/build.log" | head -30; exit 1; }

step "device query"
build-gpu/bin/engine device_query --gpu=0 | tee "$out/device_query.txt"

step "tests (GPU suite first, then the CPU suite)"
(cd build-gpu && ctest -R "parity|blob|synced|gpu_" --output-on-failure -j4) >"$out/gpu-tests.txt" 2>&1
tail -5 "$out/gpu-tests.txt"
(cd build-gpu && ctest -E "parity|gpu_" -j8) >"$out/cpu-tests.txt" 2>&1
tail -3 "$out/cpu-tests.txt"

step "benchmark"
OUT="$out" bench/gpu_alexnet.sh build-gpu/bin 128 256
step "done"
