#!/usr/bin/env bash
# BVLC Caffe's own LeNet files (examples/mnist/lenet_train_test.prototxt, lenet_solver.prototxt
# from ../shared/caffe-models), unchanged but for the data paths, the snapshot prefix, the solver
# mode (CPU) and max_iter 5000, trained on Fashion-MNIST. The reference: BVLC Caffe (OpenBLAS)
# reached 0.899 test accuracy in 138 s on a Zen 5 and in 278 s on a 2-core Zen 3.
# Usage: bench/caffe_lenet.sh        (after scripts/demo.sh or data/fashion_mnist.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
caffe=../shared/caffe-models/examples/mnist
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
data/fashion_mnist.sh >/dev/null
sed -e "s|examples/mnist/mnist_train_lmdb|$PWD/data/fashion-mnist/train_lmdb|" \
    -e "s|examples/mnist/mnist_test_lmdb|$PWD/data/fashion-mnist/test_lmdb|" \
    "$caffe/lenet_train_test.prototxt" >"$work/lenet_train_test.prototxt"
sed -e "s|examples/mnist/lenet_train_test.prototxt|$work/lenet_train_test.prototxt|" \
    -e "s|examples/mnist/lenet|$work/lenet|" -e "s|solver_mode: GPU|solver_mode: CPU|" \
    -e "s|max_iter: 10000|max_iter: 5000|" \
    "$caffe/lenet_solver.prototxt" >"$work/lenet_solver.prototxt"
# Only those lines differ from Caffe's files.
changed() { diff "$1" "$2" | grep -c "^>" || true; }
[ "$(changed "$caffe/lenet_train_test.prototxt" "$work/lenet_train_test.prototxt")" = 2 ]
[ "$(changed "$caffe/lenet_solver.prototxt" "$work/lenet_solver.prototxt")" = 4 ]

mkdir -p bench/results
start=$(date +%s.%N)
build/bin/engine train --solver="$work/lenet_solver.prototxt" >"$work/log" 2>&1
seconds=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {print e - s}')
accuracy=$(grep "Test net output #0: accuracy" "$work/log" | tail -1 | sed -e 's/.*= //')
cpu=$(grep -m1 "model name" /proc/cpuinfo | sed -e 's/.*: //')
printf "BVLC LeNet files, Fashion-MNIST, max_iter 5000, CPU (%s, %s cores): test accuracy %s in %.1f s " \
  "$cpu" "$(nproc)" "$accuracy" "$seconds" | tee bench/results/caffe_lenet.txt
# BVLC Caffe is not built here; its times were measured by earlier sessions on the two kinds of
# machine.
echo "(BVLC Caffe, measured before: 0.899 in 138 s on a Zen 5 with AVX-512, 278 s on a 2-core Zen 3)" |
  tee -a bench/results/caffe_lenet.txt
