#!/usr/bin/env bash
# The demo, from a fresh machine: installs the dependencies, builds, makes Fashion-MNIST LMDBs
# from Debian's dataset-fashion-mnist package, trains a model and prints its test accuracy.
#   scripts/demo.sh            the LeNet-style net (models/fashion_lenet), about a minute here
#   scripts/demo.sh alexnet    the small AlexNet (models/fashion_alexnet), about 35 minutes
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-lenet}
case "$model" in
  lenet | alexnet) ;;
  *) echo "usage: scripts/demo.sh [lenet|alexnet]" >&2; exit 1 ;;
esac

scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
data/fashion_mnist.sh

log=build/demo_${model}.log
echo "Training models/fashion_${model} (log: $log) ..."
start=$(date +%s)
build/bin/engine train --solver="models/fashion_${model}/solver.prototxt" 2>&1 | tee "$log" |
  grep --line-buffered -E "Iteration [0-9]+ \(|Test net output #0" | sed -e 's/^.*\] //'
accuracy=$(grep "Test net output #0: accuracy" "$log" | tail -1 | sed -e 's/.*= //')
echo "Fashion-MNIST test accuracy of models/fashion_${model}: ${accuracy}" \
  "($(( $(date +%s) - start )) s of training)"
if [ "$model" = alexnet ]; then
  # The paper's test-time evaluation: ten crops per image, their softmax averaged.
  weights=$(grep -o "models/fashion_alexnet/fashion_alexnet_iter_[0-9]*.caffemodel" "$log" | tail -1)
  ten=$(build/bin/engine test --model=models/fashion_alexnet/train_val.prototxt \
    --weights="$weights" --stage=ten_crop --iterations=100 2>&1 |
    grep "\] accuracy = " | tail -1 | sed -e 's/.*= //')
  echo "Ten-crop test accuracy of models/fashion_alexnet: ${ten}"
fi
