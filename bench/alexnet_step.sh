#!/usr/bin/env bash
# AlexNet's full training step on the CPU (forward, backward, SGD update with momentum and weight
# decay) at batch 32, and forward alone: the engine (bench/alexnet_step_engine.py, BVLC's deploy
# net) against PyTorch (bench/alexnet_pytorch.py, the same net: groups, LRN, Caffe's pooling) in
# fp32 and in torch.autocast bf16, all with the same threads, measured in this one run. PyTorch
# comes from PyPI into scripts/torch-venv.sh's environment (TORCH_VENV=DIR to use another).
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
PYTHONPATH=build/python /usr/bin/python3 bench/alexnet_step_engine.py --batch "$batch" \
  --iterations "$iterations" >"$work/engine.json"
for precision in fp32 bf16; do
  flag=; [ $precision = bf16 ] && flag=--bf16
  "$torch_python" bench/alexnet_pytorch.py --device cpu --threads "$threads" $flag \
    --batches "$batch" --iterations "$iterations" --warmup 2 >"$work/pytorch_$precision.json"
done

mkdir -p bench/results
/usr/bin/python3 - "$work" "$batch" "$threads" <<'PY' | tee bench/results/alexnet_step.txt
import json, os, sys
work, batch, threads = sys.argv[1], sys.argv[2], sys.argv[3]
load = lambda name: json.loads(open(os.path.join(work, name)).read().splitlines()[-1])
ours, fp32, bf16 = load("engine.json"), load("pytorch_fp32.json"), load("pytorch_bf16.json")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
flags = open("/proc/cpuinfo").read()
kind = "AVX-512" if " avx512f" in flags else "AVX2"
bf16_hw = "AVX512-BF16" if "avx512_bf16" in flags else ("AMX" if "amx_bf16" in flags else "no bf16 hardware")
print(f"AlexNet b{batch} on the CPU: {cpu}, {kind}, {bf16_hw}, {threads} threads; "
      f"{fp32['framework']}")
print(f"{'step':30} {'ours ms':>10} {'peer ms':>10} {'ours/peer':>10}")
rows = [("train step fp32 vs PyTorch fp32", ours["train_ms"], fp32["train_ms"]),
        ("train step fp32 vs PyTorch bf16", ours["train_ms"], bf16["train_ms"]),
        ("forward fp32 vs PyTorch fp32", ours["forward_ms"], fp32["forward_ms"]),
        ("forward fp32 vs PyTorch bf16", ours["forward_ms"], bf16["forward_ms"])]
for name, a, b in rows:
    print(f"{name:30} {a:10.1f} {b:10.1f} {a / b:10.2f}")
print("(ours in bf16: not built yet)")
PY
