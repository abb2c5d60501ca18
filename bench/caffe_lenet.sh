#!/usr/bin/env bash
# BVLC Caffe's own LeNet files (examples/mnist/lenet_train_test.prototxt, lenet_solver.prototxt
# from ../shared/caffe-models), unchanged but for the data paths, the snapshot prefix, the solver
# mode (CPU) and max_iter 5000, trained on Fashion-MNIST by the engine and then by BVLC Caffe
# (bench/bvlc_caffe.sh builds it once) from the very same files and LMDBs (our records are Caffe
# Datums), in this one run, both with THREADS BLAS threads (default: all cores). Prints one table:
# seconds and final test accuracy of each, and Caffe's seconds / ours. Where Caffe cannot be built,
# the table quotes its figures measured by earlier sessions and says why.
# Usage: bench/caffe_lenet.sh        (after scripts/demo.sh or data/fashion_mnist.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
caffe_files=../shared/caffe-models/examples/mnist
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
data/fashion_mnist.sh >/dev/null
sed -e "s|examples/mnist/mnist_train_lmdb|$PWD/data/fashion-mnist/train_lmdb|" \
    -e "s|examples/mnist/mnist_test_lmdb|$PWD/data/fashion-mnist/test_lmdb|" \
    "$caffe_files/lenet_train_test.prototxt" >"$work/lenet_train_test.prototxt"
# snapshot_prefix into the work directory: both trainers write their snapshots there.
sed -e "s|examples/mnist/lenet_train_test.prototxt|$work/lenet_train_test.prototxt|" \
    -e "s|examples/mnist/lenet|$work/lenet|" -e "s|solver_mode: GPU|solver_mode: CPU|" \
    -e "s|max_iter: 10000|max_iter: 5000|" \
    "$caffe_files/lenet_solver.prototxt" >"$work/lenet_solver.prototxt"
# Only those lines differ from Caffe's files.
changed() { diff "$1" "$2" | grep -c "^>" || true; }
[ "$(changed "$caffe_files/lenet_train_test.prototxt" "$work/lenet_train_test.prototxt")" = 2 ]
[ "$(changed "$caffe_files/lenet_solver.prototxt" "$work/lenet_solver.prototxt")" = 4 ]

threads=${THREADS:-$(nproc)}
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads
# Caffe's glog: to stderr only, not into log files under /tmp.
export GLOG_logtostderr=1

# Built (or found in its cache) before anything is timed, so that the build does not load the
# machine during our run.
caffe_error=
if ! caffe=$(bench/bvlc_caffe.sh 2>"$work/caffe_build.err" | tail -1) || ! [ -x "$caffe" ]; then
  caffe=
  caffe_error=$(tail -1 "$work/caffe_build.err")
fi

# Trains with the solver file given; prints "seconds accuracy" (the last test's accuracy).
train() {
  local log=$work/$1.log start seconds accuracy
  shift
  start=$(date +%s.%N)
  "$@" train --solver="$work/lenet_solver.prototxt" >"$log" 2>&1 ||
    { echo "$* train failed; its log:" >&2; tail -20 "$log" >&2; return 1; }
  seconds=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {print e - s}')
  accuracy=$(grep "Test net output #0: accuracy" "$log" | tail -1 | sed -e 's/.*= //')
  echo "$seconds $accuracy"
}
read -r ours_s ours_acc < <(train engine build/bin/engine)
if [ -n "$caffe" ]; then
  read -r caffe_s caffe_acc < <(train caffe "$caffe")
fi

mkdir -p bench/results
cpu=$(grep -m1 "model name" /proc/cpuinfo | sed -e 's/.*: //')
{
  echo "LeNet, BVLC's files, Fashion-MNIST, max_iter 5000, CPU ($cpu, $(nproc) cores, $threads threads)"
  printf "%-24s %10s %12s %12s\n" "" "ours" "BVLC Caffe" "Caffe/ours"
  if [ -n "$caffe" ]; then
    printf "%-24s %10.1f %12.1f %12.2f\n" "training seconds" "$ours_s" "$caffe_s" \
      "$(awk -v a="$caffe_s" -v b="$ours_s" 'BEGIN {print a / b}')"
    printf "%-24s %10s %12s\n" "final test accuracy" "$ours_acc" "$caffe_acc"
    echo "(BVLC Caffe $("$caffe" --version 2>&1 | sed -e 's/.*version //'): bench/bvlc_caffe.sh's build, same files, same LMDBs, measured in this run)"
  else
    printf "%-24s %10.1f %12s\n" "training seconds" "$ours_s" "-"
    printf "%-24s %10s %12s\n" "final test accuracy" "$ours_acc" "-"
    echo "BVLC Caffe could not be built here ($caffe_error)."
    # Its figures measured by earlier sessions on the two kinds of machine.
    echo "(BVLC Caffe, measured before: 0.899 in 138 s on a Zen 5 with AVX-512, 278 s on a 2-core Zen 3)"
  fi
} | tee bench/results/caffe_lenet.txt
