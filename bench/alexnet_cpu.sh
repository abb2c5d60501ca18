#!/usr/bin/env bash
# AlexNet training step on the CPU: forward + backward at batch 32 of the unchanged BVLC deploy
# net with a label input and SoftmaxWithLoss appended, measured in the same run on
#   - the reference path (--engine=CAFFE: im2col + OpenBLAS),
#   - the default path with every blob plain between layers (ENGINE_LAYOUTS=plain: each oneDNN
#     layer reorders its inputs into its blocked format and its outputs back),
#   - the default path with blocked layouts kept from one oneDNN layer to the next.
# ROUNDS (default 2) alternating rounds, the best of each kept; the per-layer report and the
# implementations chosen of the last round of each go to bench/results/alexnet_cpu_*.txt.
# Prints one table: configuration, forward, forward + backward, ratio to the reference path.
# Usage: bench/alexnet_cpu.sh [iterations] [batch]      (build first: scripts/test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
iterations=${1:-5}
batch=${2:-32}
deploy=../shared/caffe-models/models/bvlc_alexnet/deploy.prototxt
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
net=$work/alexnet.prototxt
cat "$deploy" - >"$net" <<'NET'
layer { name: "label" type: "Input" top: "label" input_param { shape { dim: 10 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc8" bottom: "label" top: "loss" }
NET
mkdir -p bench/results
configurations="CAFFE DEFAULT_PLAIN DEFAULT"
run() {
  local configuration=$1 engine=${1%_PLAIN} layouts=blocked
  [ "$configuration" = DEFAULT_PLAIN ] && layouts=plain
  ENGINE_LAYOUTS=$layouts build/bin/engine time --model="$net" --batch="$batch" \
    --iterations="$iterations" --engine="$engine" >"bench/results/alexnet_cpu_${configuration}.txt"
  awk -v name="$configuration" '/Average Forward pass:/ {f = $(NF - 1)}
       /Average Forward-Backward:/ {fb = $(NF - 1)} END {print name, f, fb}' \
    "bench/results/alexnet_cpu_${configuration}.txt" >>"$work/times"
}
for round in $(seq "${ROUNDS:-2}"); do
  for configuration in $configurations; do run "$configuration"; done
done
{
  echo "AlexNet b$batch forward+backward, $iterations iterations, best of ${ROUNDS:-2} rounds;" \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
  printf '%-28s %12s %14s %14s\n' configuration "forward ms" "fwd+bwd ms" "ratio to CAFFE"
  awk '{ if (!($1 in f) || $2 < f[$1]) f[$1] = $2; if (!($1 in fb) || $3 < fb[$1]) fb[$1] = $3 }
       END {
         names["CAFFE"] = "CAFFE (reference)"; names["DEFAULT_PLAIN"] = "DEFAULT, plain blobs"
         names["DEFAULT"] = "DEFAULT, layouts kept"
         split("CAFFE DEFAULT_PLAIN DEFAULT", order, " ")
         for (i = 1; i <= 3; ++i) { c = order[i]
           printf "%-28s %12.1f %14.1f %14.2f\n", names[c], f[c], fb[c], fb[c] / fb["CAFFE"] }
       }' "$work/times"
} | tee bench/results/alexnet_cpu.txt
