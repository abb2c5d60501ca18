#!/usr/bin/env bash
# The Fashion-MNIST small AlexNet (models/fashion_alexnet, the demo's `alexnet` model) trained
# end to end in each precision, one after the other on this machine: the wall time from the
# start of `engine train` to the first test round at or above TARGET accuracy, the best test
# accuracy and the whole run's time. The solver is the model's own but for the snapshot prefix
# (a temporary folder); --iterations shortens a run for a quick check.
# Usage: bench/fashion_time_to_accuracy.sh [PRECISIONS...]      default: fp32 bf16
#        TARGET=0.925 ITERATIONS=14000 bench/fashion_time_to_accuracy.sh fp32
set -euo pipefail
cd "$(dirname "$0")/.."
precisions=("$@")
[ ${#precisions[@]} -eq 0 ] && precisions=(fp32 bf16)
target=${TARGET:-0.925}
iterations=${ITERATIONS:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
data/fashion_mnist.sh >/dev/null
sed -e "s|^snapshot_prefix:.*|snapshot_prefix: \"$work/fashion_alexnet\"|" \
  models/fashion_alexnet/solver.prototxt >"$work/solver.prototxt"
mkdir -p bench/results
cpu=$(grep -m1 "model name" /proc/cpuinfo | sed -e 's/.*: //')
bf16=$(grep -o -m1 -w -E "avx512_bf16|amx_bf16" /proc/cpuinfo | head -1 || true)

declare -A reached best total
for precision in "${precisions[@]}"; do
  log="$work/train_${precision}.log"
  start=$(date +%s.%N)
  reached[$precision]="not reached"
  # Each test round's accuracy, stamped with the seconds since the start as it arrives.
  build/bin/engine train --solver="$work/solver.prototxt" --precision="$precision" \
    ${iterations:+--iterations="$iterations"} 2>&1 | tee "$log" |
    { grep --line-buffered "Test net output #0: accuracy" || true; } |
    while read -r line; do
      echo "$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}') ${line##*= }"
    done >"$work/rounds_$precision"
  total[$precision]=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.0f", e - s}')
  best[$precision]=$(sort -k2 -g "$work/rounds_$precision" | tail -1 | cut -d' ' -f2)
  first=$(awk -v t="$target" '$2 >= t {print $1; exit}' "$work/rounds_$precision")
  [ -n "$first" ] && reached[$precision]="$first s"
  echo "$precision: test rounds (seconds, accuracy):" $(tr '\n' ' ' <"$work/rounds_$precision")
done

{
  echo "Fashion-MNIST small AlexNet, solver models/fashion_alexnet/solver.prototxt${iterations:+ cut to $iterations iterations}"
  echo "CPU: $cpu, $(nproc) cores; bf16 hardware: ${bf16:-none (bf16 rounds the operands and multiplies in fp32)}"
  printf "%-10s %-22s %-14s %s\n" precision "time to $target" "best accuracy" "whole run (s)"
  for precision in "${precisions[@]}"; do
    printf "%-10s %-22s %-14s %s\n" "$precision" "${reached[$precision]}" "${best[$precision]:-none}" \
      "${total[$precision]}"
  done
} | tee bench/results/fashion_time_to_accuracy.txt
