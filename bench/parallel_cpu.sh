#!/usr/bin/env bash
# What parallel training costs on this machine, measured: for the demo LeNet and the small
# AlexNet on Fashion-MNIST, training throughput of one process with 2 threads (OpenBLAS/oneDNN)
# against 2 MPI ranks with 1 thread each at the same effective batch: data parallel (each rank
# half the batch; gradients allreduced), model parallel (both ranks the whole batch, each half of
# every layer's channels; activations exchanged) and the hybrid (convolutions data parallel,
# fully connected layers model parallel). For each: the bytes handed to collectives and the time
# inside them per iteration. Results: bench/results/parallel_cpu.txt.
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

# A training run's log, with OMP/OpenBLAS at `threads` threads; under mpirun with 2 ranks when
# `ranks` is 2. Extra arguments go to engine train.
train() {  # log ranks threads solver iterations [flags...]
  local log=$1 ranks=$2 threads=$3 solver=$4 iterations=$5
  shift 5
  if [ "$ranks" = 1 ]; then
    OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads build/bin/engine train \
      --solver="$solver" --iterations="$iterations" "$@" >"$log" 2>&1
  else
    mpirun --allow-run-as-root --oversubscribe -np "$ranks" -x OMP_NUM_THREADS="$threads" \
      -x OPENBLAS_NUM_THREADS="$threads" --bind-to none build/bin/engine train \
      --solver="$solver" --iterations="$iterations" "$@" >"$log" 2>&1
  fi
}

# "MB ms": payload per iteration and milliseconds per iteration inside the collectives, from a
# log's "<kind> over" line ("-" where the run had none).
exchange() {  # log kind
  grep "$2 over" "$1" | sed -e 's/.*: \([0-9.e+-]*\) MB per iteration[^,]*, \([0-9.e+-]*\) ms[^,]*\(, \([0-9.e+-]*\) ms\)\{0,1\}.*/\1 \2 \4/' \
    | awk '{printf "%.2f MB, %.1f ms", $1, $2; if (NF > 2) printf " (solver waited %.1f ms)", $3}' \
    | grep . || echo "-"
}

run() {  # model batch iterations display
  local model=$1 batch=$2 iterations=$3 display=$4 one
  prepare "$model" "$batch" "$model-1" "$display"
  prepare "$model" $((batch / 2)) "$model-2" "$display"
  train "$work/$model-1.log" 1 2 "$work/$model-1.solver" "$iterations"
  train "$work/$model-dp.log" 2 1 "$work/$model-2.solver" "$iterations"
  train "$work/$model-mp.log" 2 1 "$work/$model-1.solver" "$iterations" --model_parallel=2
  train "$work/$model-hybrid.log" 2 1 "$work/$model-2.solver" "$iterations" --model_parallel=2 \
    --model_parallel_scope=FULLY_CONNECTED
  one=$(rate "$work/$model-1.log")
  row() {  # configuration log
    local images
    images=$(rate "$2")
    printf "| %s | %s | %s | %s | %s | %s |\n" "$model" "$1" "$images" \
      "$(awk -v a="$one" -v b="$images" 'BEGIN {printf "%.2f", a ? b / a : 0}')" \
      "$(exchange "$2" "Gradient exchange")" "$(exchange "$2" "Model-parallel exchange")"
  }
  row "1 process x 2 threads, batch $batch" "$work/$model-1.log"
  row "data parallel, 2 ranks x 1 thread, batch $((batch / 2)) each" "$work/$model-dp.log"
  row "model parallel, 2 ranks x 1 thread, batch $batch" "$work/$model-mp.log"
  row "hybrid (fc split), 2 ranks x 1 thread, batch $((batch / 2)) each" "$work/$model-hybrid.log"
}

mkdir -p bench/results
{
  echo "CPU: $cpu (2 cores; AVX-512: $avx512). $(date -u +%Y-%m-%d)."
  echo "Training images/s at the same effective batch: 1 process x 2 threads against 2 MPI"
  echo "ranks x 1 thread: data parallel (gradients allreduced in buckets during backward),"
  echo "model parallel (--model_parallel=2: each rank half of every layer's channels, activations"
  echo "all-gathered where a layer reads the other's), and Krizhevsky's hybrid (convolutions data"
  echo "parallel, fully connected layers split over both ranks' images). Exchanges: payload per"
  echo "iteration handed to the collectives and milliseconds per iteration inside them (for the"
  echo "gradients, on the exchange thread, overlapping backward)."
  echo
  echo "| model | configuration | images/s | vs 1 process | gradient exchange | activation exchange |"
  echo "|---|---|---|---|---|---|"
  run fashion_lenet 64 "$lenet_iterations" 100
  run fashion_alexnet 128 "$alexnet_iterations" 10
} | tee bench/results/parallel_cpu.txt
