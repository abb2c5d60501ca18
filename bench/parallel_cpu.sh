#!/usr/bin/env bash
# What parallel training costs on this machine, measured: for the demo LeNet and the small
# AlexNet on Fashion-MNIST, training throughput of one process with 2 threads (OpenBLAS/oneDNN)
# against 2 MPI ranks with 1 thread each at the same effective batch: data parallel (each rank
# half the batch; gradients allreduced) and model parallel (both ranks the whole batch, each half
# of every layer's channels; activations exchanged). For each: the time spent in collectives
# and the bytes handed to them per iteration. Results: bench/results/parallel_cpu.txt.
# Usage: bench/parallel_cpu.sh [LENET_ITERATIONS] [ALEXNET_ITERATIONS]   (after scripts/demo.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
lenet_iterations=${1:-600}
alexnet_iterations=${2:-60}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
data/fashion_mnist.sh >/dev/null
cpu=$(grep -m1 "model name" /proc/cpuinfo | sed -e 's/.*: //')
avx512=$(grep -qo avx512f /proc/cpuinfo && echo yes || echo no)

# The model's net and solver with the training batch halved (for 2 ranks) or kept, no tests,
# a display every `display` iterations.
prepare() {  # model batch name display
  local model=$1 batch=$2 name=$3 display=$4
  # Only the first data layer (the TRAIN one) changes its batch.
  awk -v b="$batch" '!done && /batch_size:/ {sub(/batch_size: [0-9]+/, "batch_size: " b); done=1} 1' \
    "models/$model/train_val.prototxt" >"$work/$name.prototxt"
  sed -e "s|^net: .*|net: \"$work/$name.prototxt\"|" -e "s|^display: .*|display: $display|" \
      -e "s|^test_interval: .*|test_interval: 100000000|" -e "s|^average_loss: .*|average_loss: 1|" \
      "models/$model/solver.prototxt" >"$work/$name.solver"
}

# Images/s over the displays after the first (the first includes start-up), from a log.
rate() { grep -o "iter/s, [0-9.e+]* images/s" "$1" | awk 'NR > 1 {s += $2; n++} END {printf "%.0f", n ? s / n : 0}'; }

run() {  # model batch iterations display
  local model=$1 batch=$2 iterations=$3 display=$4
  prepare "$model" "$batch" "$model-1" "$display"
  prepare "$model" $((batch / 2)) "$model-2" "$display"
  prepare "$model" "$batch" "$model-mp" "$display"
  OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 build/bin/engine train \
    --solver="$work/$model-1.solver" --iterations="$iterations" >"$work/$model-1.log" 2>&1
  mpirun --allow-run-as-root --oversubscribe -np 2 -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1 \
    --bind-to none build/bin/engine train --solver="$work/$model-2.solver" \
    --iterations="$iterations" >"$work/$model-2.log" 2>&1
  mpirun --allow-run-as-root --oversubscribe -np 2 -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1 \
    --bind-to none build/bin/engine train --solver="$work/$model-mp.solver" --model_parallel=2 \
    --iterations="$iterations" >"$work/$model-mp.log" 2>&1
  local one two mp
  one=$(rate "$work/$model-1.log")
  two=$(rate "$work/$model-2.log")
  mp=$(rate "$work/$model-mp.log")
  ratio() { awk -v a="$one" -v b="$1" 'BEGIN {printf "%.2f", a ? b / a : 0}'; }
  costs() { grep "$2 over" "$1" | sed -e 's/.*: //' -e 's/ handed to collectives//' -e 's/ per iteration//g' -e 's/ (tests.*//'; }
  printf "| %s | %d | %s | %s (%s) | %s | %s (%s) | %s |\n" "$model" "$batch" "$one" "$two" \
    "$(ratio "$two")" "$(costs "$work/$model-2.log" "Gradient exchange")" "$mp" "$(ratio "$mp")" \
    "$(costs "$work/$model-mp.log" "Model-parallel exchange")"
}

mkdir -p bench/results
{
  echo "CPU: $cpu (2 cores; AVX-512: $avx512). $(date -u +%Y-%m-%d)."
  echo "Training images/s at the same effective batch: 1 process x 2 threads against 2 MPI"
  echo "ranks x 1 thread, data parallel (gradients allreduced in buckets during backward) and"
  echo "model parallel (--model_parallel=2: activations all-gathered where a layer reads the"
  echo "other worker's channels). Exchange: payload handed to collectives per iteration, and the"
  echo "time per iteration inside them (data parallel: on the exchange thread; its last column,"
  echo "what the solver waited). In parentheses: the ratio to 1 process."
  echo
  echo "| model | batch | 1 x 2 threads | data parallel 2 x 1 | its exchange | model parallel 2 x 1 | its exchange |"
  echo "|---|---|---|---|---|---|---|"
  run fashion_lenet 64 "$lenet_iterations" 100
  run fashion_alexnet 128 "$alexnet_iterations" 10
} | tee bench/results/parallel_cpu.txt
