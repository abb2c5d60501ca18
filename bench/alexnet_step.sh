#!/usr/bin/env bash
# AlexNet's full training step on the CPU (forward, backward, SGD update with momentum and weight
# decay) at batch 32, and forward alone: the engine (bench/alexnet_step_engine.py, BVLC's deploy
# net) against PyTorch (bench/alexnet_pytorch.py, the same net: groups, LRN, Caffe's pooling) in
# fp32 and in torch.autocast bf16, all with the same threads, measured in this one run (ROUNDS
# alternating rounds of ours and PyTorch fp32, default 3, the best of each). PyTorch
# comes from PyPI into scripts/torch-venv.sh's environment (TORCH_VENV=DIR to use another).
# BVLC Caffe (built once by bench/bvlc_caffe.sh) joins each round: its `caffe time` (forward and
# backward of the TRAIN net, no update) against our `engine time` on the same prototxt (the deploy
# net at this batch with a label Input and SoftmaxWithLoss), both with the same BLAS threads. If
# Caffe cannot be built, the table says why and leaves its rows out.
# Ours in bf16 (`precision: BF16`: the convolutions and inner products multiply bf16 operands;
# on a CPU without bf16 hardware it rounds them and multiplies in fp32) and PyTorch's autocast
# bf16 run once each, after the rounds, for BF16_ITERATIONS (default: iterations; PyTorch's bf16
# is emulated without bf16 hardware, tens of seconds a step).
# Prints one table and writes it to bench/results/alexnet_step.txt.
# Usage: bench/alexnet_step.sh [iterations] [batch]      (build first: scripts/test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
iterations=${1:-10}
batch=${2:-32}
threads=${THREADS:-$(nproc)}
torch_python=$(scripts/torch-venv.sh "${TORCH_VENV:-build/torch-venv}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

export OMP_NUM_THREADS=$threads
# Caffe's BLAS is OpenBLAS (Debian's default variant): its threads are set here, the same number.
export OPENBLAS_NUM_THREADS=$threads
# Caffe's glog: to stderr only, not into log files under /tmp.
export GLOG_logtostderr=1

# BVLC Caffe, built (or found in its cache) before anything is timed.
if ! caffe=$(bench/bvlc_caffe.sh 2>"$work/caffe_build.err" | tail -1) || ! [ -x "$caffe" ]; then
  caffe=
  tail -1 "$work/caffe_build.err" >"$work/caffe_error"
fi
# The net both `time` tools run: BVLC's deploy net at this batch, a label and the loss appended.
deploy=../shared/caffe-models/models/bvlc_alexnet/deploy.prototxt
first_dim="shape: { dim: 10 dim: 3 dim: 227 dim: 227 }"
grep -q "$first_dim" "$deploy"
sed -e "s|$first_dim|shape: { dim: $batch dim: 3 dim: 227 dim: 227 }|" "$deploy" >"$work/alexnet.prototxt"
cat >>"$work/alexnet.prototxt" <<NET
layer { name: "label" type: "Input" top: "label" input_param { shape { dim: $batch } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc8" bottom: "label" top: "loss" }
NET
# One JSON line from a `time` tool's log (Caffe's and ours print the same summary lines).
time_json() {
  awk '/Average Forward pass:/ {f = $(NF - 1)} /Average Forward-Backward:/ {fb = $(NF - 1)}
       END {if (f == "" || fb == "") exit 1
            printf "{\"forward_ms\": %s, \"fwdbwd_ms\": %s}\n", f, fb}' "$1"
}

# ROUNDS alternations of ours and PyTorch fp32 (and of our and Caffe's `time`), each framework's
# best round kept: a shared machine's speed drifts over minutes, and alternating spreads the drift
# over both.
for round in $(seq "${ROUNDS:-3}"); do
  PYTHONPATH=build/python /usr/bin/python3 bench/alexnet_step_engine.py --batch "$batch" \
    --iterations "$iterations" >>"$work/engine.json"
  "$torch_python" bench/alexnet_pytorch.py --device cpu --threads "$threads" \
    --batches "$batch" --iterations "$iterations" --warmup 2 >>"$work/pytorch_fp32.json"
  if [ -n "$caffe" ]; then
    build/bin/engine time --model="$work/alexnet.prototxt" --iterations="$iterations" \
      >"$work/engine_time.log" 2>&1
    time_json "$work/engine_time.log" >>"$work/engine_time.json"
    "$caffe" time -model "$work/alexnet.prototxt" -iterations "$iterations" \
      >"$work/caffe_time.log" 2>&1 || { tail -20 "$work/caffe_time.log" >&2; exit 1; }
    time_json "$work/caffe_time.log" >>"$work/caffe_time.json"
  fi
done
bf16_iterations=${BF16_ITERATIONS:-$iterations}
PYTHONPATH=build/python /usr/bin/python3 bench/alexnet_step_engine.py --batch "$batch" \
  --iterations "$bf16_iterations" --precision bf16 >>"$work/engine_bf16.json"
"$torch_python" bench/alexnet_pytorch.py --device cpu --threads "$threads" --bf16 \
  --batches "$batch" --iterations "$bf16_iterations" --warmup 2 >>"$work/pytorch_bf16.json"

mkdir -p bench/results
/usr/bin/python3 - "$work" "$batch" "$threads" <<'PY' | tee bench/results/alexnet_step.txt
import json, os, sys
work, batch, threads = sys.argv[1], sys.argv[2], sys.argv[3]
def load(name):
    rounds = [json.loads(line) for line in open(os.path.join(work, name)) if line.strip()]
    best = dict(rounds[0])
    for key in ("train_ms", "forward_ms"):
        best[key] = min(r[key] for r in rounds)
    best["rounds"] = len(rounds)
    return best
ours, fp32, bf16 = load("engine.json"), load("pytorch_fp32.json"), load("pytorch_bf16.json")
ours_bf16 = load("engine_bf16.json")
def load_time(name):
    rounds = [json.loads(line) for line in open(os.path.join(work, name)) if line.strip()]
    return {key: min(r[key] for r in rounds) for key in ("forward_ms", "fwdbwd_ms")}
have_caffe = os.path.exists(os.path.join(work, "caffe_time.json"))
if have_caffe:
    ours_time, caffe = load_time("engine_time.json"), load_time("caffe_time.json")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
flags = open("/proc/cpuinfo").read()
kind = "AVX-512" if " avx512f" in flags else "AVX2"
bf16_hw = "AVX512-BF16" if "avx512_bf16" in flags else ("AMX" if "amx_bf16" in flags else "no bf16 hardware")
print(f"AlexNet b{batch} on the CPU: {cpu}, {kind}, {bf16_hw}, {threads} threads; "
      f"{fp32['framework']}; best of {ours['rounds']} alternating rounds (bf16: 1)")
print(f"{'step':30} {'ours ms':>10} {'peer ms':>10} {'ours/peer':>10}")
rows = [("train step fp32 vs PyTorch fp32", ours["train_ms"], fp32["train_ms"]),
        ("train step fp32 vs PyTorch bf16", ours["train_ms"], bf16["train_ms"]),
        ("forward fp32 vs PyTorch fp32", ours["forward_ms"], fp32["forward_ms"]),
        ("forward fp32 vs PyTorch bf16", ours["forward_ms"], bf16["forward_ms"]),
        ("train step bf16 vs PyTorch bf16", ours_bf16["train_ms"], bf16["train_ms"]),
        ("forward bf16 vs PyTorch bf16", ours_bf16["forward_ms"], bf16["forward_ms"]),
        ("train step bf16 vs ours fp32", ours_bf16["train_ms"], ours["train_ms"])]
if have_caffe:
    rows += [("fwd+bwd fp32 vs BVLC Caffe", ours_time["fwdbwd_ms"], caffe["fwdbwd_ms"]),
             ("forward fp32 vs BVLC Caffe", ours_time["forward_ms"], caffe["forward_ms"])]
for name, a, b in rows:
    print(f"{name:30} {a:10.1f} {b:10.1f} {a / b:10.2f}")
if have_caffe:
    print("(BVLC Caffe rows: `engine time` against `caffe time` (bench/bvlc_caffe.sh's build, "
          "OpenBLAS) on the same prototxt: forward and backward of the TRAIN net, no update)")
else:
    print("BVLC Caffe could not be built here (" + open(os.path.join(work, "caffe_error")).read().strip() + ")")
if bf16_hw == "no bf16 hardware":
    print("(bf16 on this CPU: both frameworks without bf16 hardware; ours rounds the operands to "
          "bf16 and multiplies in fp32, the numbers of bf16 hardware at fp32's speed or less)")
PY
