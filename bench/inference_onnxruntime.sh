#!/usr/bin/env bash
# Inference on the CPU against ONNX Runtime: batch-1 latency and batch-32 throughput of CaffeNet
# and GoogLeNet (BVLC's deploy nets in ../shared/caffe-models), ResNet-50 and MobileNetV2
# (models/resnet50, models/mobilenet_v2), each with random weights (bench/inference_onnxruntime.py
# prepare: He-normal, BatchNorm mean 0, variance 1, scale factor 1), exported by our
# `engine export_onnx` (one file per batch size) and run by ONNX Runtime from PyPI
# (CPUExecutionProvider, THREADS intra-op threads, 1 inter-op, ORT_ENABLE_ALL). Ours runs
# through the Python module (net.forward(), OMP_NUM_THREADS=THREADS). ROUNDS alternating rounds
# of ours and ORT (default 3), the best of each kept: this machine's speed drifts over minutes.
# Both outputs ('prob') are compared. Prints one table and writes it, with the processor, to
# bench/results/inference_onnxruntime.txt; a model whose export or run fails is marked FAILED
# with the step and the last line of its output (the last lines also go to stderr).
#
# Usage: bench/inference_onnxruntime.sh [MODEL...]    (default: caffenet googlenet resnet50
#        mobilenet_v2; build first: scripts/test.sh)
# Environment: THREADS (2), ROUNDS (3), WARMUP1 (5) and ITERATIONS1 (30) passes at batch 1,
#   WARMUP32 (2) and ITERATIONS32 (5) at batch 32; ENGINE (build/bin/engine) and
#   ENGINE_PYTHONPATH (build/python) for another build; ONNX_VENV (build/onnx-venv, made by
#   scripts/onnx-venv.sh if needed; any environment with onnxruntime will do);
#   OMP_WAIT_POLICY=passive makes both sides' threads sleep rather than spin when idle (ORT:
#   session.intra_op.allow_spinning 0), which matters on a machine busy with other work.
set -euo pipefail
cd "$(dirname "$0")/.."
engine=${ENGINE:-build/bin/engine}
engine_pythonpath=${ENGINE_PYTHONPATH:-build/python}
export THREADS=${THREADS:-2}
export ROUNDS=${ROUNDS:-3}
export OMP_NUM_THREADS=$THREADS
ort_python=$(scripts/onnx-venv.sh "${ONNX_VENV:-build/onnx-venv}")
helper=bench/inference_onnxruntime.py
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(caffenet googlenet resnet50 mobilenet_v2)
zoo=../shared/caffe-models/models
declare -A prototxt=(
  [caffenet]=$zoo/bvlc_reference_caffenet/deploy.prototxt
  [googlenet]=$zoo/bvlc_googlenet/deploy.prototxt
  [resnet50]=models/resnet50/deploy.prototxt
  [mobilenet_v2]=models/mobilenet_v2/deploy.prototxt
)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Runs a step of MODEL, its output appended to $work/MODEL.log; a failure marks the model as
# failed with the step's name and the last line of the step's output.
step() {
  local model=$1 name=$2
  shift 2
  if ! "$@" >"$work/$model.step" 2>&1; then
    cat "$work/$model.step" >>"$work/$model.log"
    echo "$name: $(grep -v '^\s*$' "$work/$model.step" | tail -n 1)" >"$work/$model.failed"
    echo "== $model: $name failed:" >&2
    tail -n 5 "$work/$model.step" >&2
    return 1
  fi
  cat "$work/$model.step" >>"$work/$model.log"
}
failed() { [ -e "$work/$1.failed" ]; }

for model in "${models[@]}"; do
  net=${prototxt[$model]:?unknown model $model (known: ${!prototxt[*]})}
  echo "== $model: random weights, export to ONNX" >&2
  step "$model" "random weights" env PYTHONPATH="$engine_pythonpath" /usr/bin/python3 "$helper" \
    prepare "$model" "$net" "$work" || continue
  for batch in 1 32; do
    step "$model" "export_onnx" "$engine" export_onnx --model="$net" --phase=TEST \
      --weights="$work/$model.caffemodel" --batch="$batch" --output="$work/${model}_b$batch.onnx" \
      || break
  done
done

for round in $(seq "$ROUNDS"); do
  for model in "${models[@]}"; do
    failed "$model" && continue
    echo "== round $round/$ROUNDS: $model, ours then ORT" >&2
    step "$model" "ours" env PYTHONPATH="$engine_pythonpath" /usr/bin/python3 "$helper" \
      ours "$model" "${prototxt[$model]}" "$work" || continue
    step "$model" "ORT" "$ort_python" "$helper" ort "$model" "$work" || continue
  done
done

mkdir -p bench/results
/usr/bin/python3 "$helper" report "$work" "${models[@]}" | tee bench/results/inference_onnxruntime.txt
