#!/usr/bin/env bash
# Data parallel over several GPUs (NCCL): trains a small net on constant DummyData for 20 SGD
# iterations on GPU 0 alone and on every GPU (--gpu=all, one thread each); every GPU sees the same
# batch, so the averaged gradients are one GPU's and the weights must agree within 1e-5. Skips
# with one GPU. Usage: scripts/gpu-multi-check.sh BIN_DIR OUT_DIR   (from scripts/gpu-check.sh)
set -euo pipefail
bin=$1
out=$2
count=$(nvidia-smi -L | wc -l)
if [ "$count" -lt 2 ]; then
  echo "SKIPPED: one GPU here; --gpu=all needs two or more"
  exit 0
fi
work=$(mktemp -d)
cat >"$work/net.prototxt" <<NET
name: "multi"
layer { name: "data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 16 dim: 3 dim: 12 dim: 12 } shape { dim: 16 }
    data_filler { type: "constant" value: 0.5 } data_filler { type: "constant" value: 1 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 8 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
  inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
NET
for run in one all; do
  cat >"$work/$run.solver" <<SOLVER
net: "$work/net.prototxt"
base_lr: 0.01 momentum: 0.9 weight_decay: 0.0005 lr_policy: "fixed"
max_iter: 20 display: 10 snapshot_after_train: true random_seed: 3
snapshot_prefix: "$work/$run"
SOLVER
done
"$bin/engine" train --solver="$work/one.solver" --gpu=0 --deterministic >"$out/multi-one.log" 2>&1
"$bin/engine" train --solver="$work/all.solver" --gpu=all --deterministic >"$out/multi-all.log" 2>&1
grep -E "Data parallel|Gradient exchange" "$out/multi-all.log" || true
"$bin/engine" forward --model="$work/net.prototxt" --weights="$work/one_iter_20.caffemodel" \
  --phase=TRAIN --dump="$work/one" >/dev/null
"$bin/engine" forward --model="$work/net.prototxt" --weights="$work/all_iter_20.caffemodel" \
  --phase=TRAIN --dump="$work/all" >/dev/null
python3 - "$work" <<'PY'
import sys, numpy as np
w = sys.argv[1]
a, b = np.load(f"{w}/one/ip.npy"), np.load(f"{w}/all/ip.npy")
diff = float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-12))
print(f"ip outputs after 20 iterations, one GPU vs all: relative difference {diff:.2e}")
sys.exit(0 if diff <= 1e-5 else 1)
PY
echo "PASSED"
