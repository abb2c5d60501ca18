#!/usr/bin/env bash
# AlexNet training step on the CPU: forward + backward at batch 32 of the unchanged BVLC deploy
# net with a label input and SoftmaxWithLoss appended, on the reference path (--engine=CAFFE:
# im2col + OpenBLAS) and the default (oneDNN) path, measured in the same run.
# Usage: bench/alexnet_cpu.sh [iterations] [batch]      (build first: scripts/test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
iterations=${1:-5}
batch=${2:-32}
deploy=../shared/caffe-models/models/bvlc_alexnet/deploy.prototxt
net=$(mktemp --suffix=.prototxt)
trap 'rm -f "$net"' EXIT
cat "$deploy" - >"$net" <<'NET'
layer { name: "label" type: "Input" top: "label" input_param { shape { dim: 10 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc8" bottom: "label" top: "loss" }
NET
mkdir -p bench/results
for engine in CAFFE DEFAULT; do
  echo "== engine $engine, batch $batch, $iterations iterations"
  build/bin/engine time --model="$net" --batch="$batch" --iterations="$iterations" \
    --engine="$engine" | tee "bench/results/alexnet_cpu_${engine}.txt" | grep -v "^Iteration"
done
