#!/usr/bin/env bash
# AlexNet (models/alexnet; float32, then bf16/fp16) on one GPU: this engine's training iterations/s
# (`engine train` on the net with synthetic DummyData inputs: forward, backward and the SGD
# update) and forward-only images per second (`engine time`), against PyTorch running the same
# architecture on the same GPU in the same call (bench/alexnet_pytorch.py, cuDNN benchmark
# mode). Prints a table last; details go to $OUT (or bench/results).
# Usage: bench/gpu_alexnet.sh [ENGINE_BIN_DIR] [BATCHES...]     e.g. bench/gpu_alexnet.sh build/bin 128 256
set -uo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/bin}
shift || true
batches=("$@")
[ ${#batches[@]} -eq 0 ] && batches=(128 256)
out=${OUT:-bench/results}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
iterations=${ITERATIONS:-40}
device=${DEVICE_FLAG---gpu=0}  # DEVICE_FLAG= (empty) runs the engine's side on the CPU

# The train net with DummyData in place of the LMDB data layers (same shapes as the crops).
make_net() {  # batch -> $work/net_B.prototxt
  python3 - "$1" "$work/net_$1.prototxt" <<'PY'
import re, sys
batch, path = sys.argv[1], sys.argv[2]
text = open("models/alexnet/train_val.prototxt").read()
# Drop the Data layers and the TEST-only layers; put one DummyData source in front. Constant
# fillers fill once, as PyTorch's side makes its input once: a random filler would refill 20M
# values on the host every iteration and time that instead of the GPU.
header, *layers = re.split(r"\n(?=layer \{)", text)
keep = [header] + [l for l in layers
                   if 'type: "Data"' not in l and "include { phase: TEST" not in l]
dummy = ('layer {\n  name: "data" type: "DummyData" top: "data" top: "label"\n'
         '  dummy_data_param {\n'
         f'    shape {{ dim: {batch} dim: 3 dim: 227 dim: 227 }} shape {{ dim: {batch} }}\n'
         '    data_filler { type: "constant" value: 50 } data_filler { type: "constant" value: 7 }\n'
         '  }\n}')
open(path, "w").write("\n".join([keep[0], dummy] + keep[1:]) + "\n")
PY
}

declare -A train_its forward_ips
for batch in "${batches[@]}"; do
  make_net "$batch"
  cat > "$work/solver_$batch.prototxt" <<SOLVER
net: "$work/net_$batch.prototxt"
base_lr: 0.001
lr_policy: "fixed"
momentum: 0.9
weight_decay: 0.0005
display: 10
max_iter: $((iterations + 10))
snapshot_after_train: false
random_seed: 1
SOLVER
  "$bin/engine" train --solver="$work/solver_$batch.prototxt" $device \
    >"$out/engine_train_$batch.log" 2>&1
  # The display after the first 10 iterations (warm-up) onward: mean of the iter/s figures.
  train_its[$batch]=$(grep -o "([0-9.e+]* iter/s" "$out/engine_train_$batch.log" | tail -n +2 |
    tr -d '(' | awk '{s += $1; n++} END {if (n) printf "%.2f", s / n; else print "n/a"}')
  "$bin/engine" time --model="$work/net_$batch.prototxt" $device --phase=TEST \
    --iterations=$iterations >"$out/engine_time_$batch.log" 2>&1
  forward_ms=$(grep "Average Forward pass" "$out/engine_time_$batch.log" | grep -o "[0-9.]* ms" | cut -d' ' -f1)
  forward_ips[$batch]=$(awk -v b="$batch" -v ms="${forward_ms:-0}" 'BEGIN {if (ms > 0) printf "%.0f", b * 1000 / ms; else print "n/a"}')
done

python3 bench/alexnet_pytorch.py --batches "${batches[@]}" --iterations $iterations \
  >"$out/pytorch.jsonl" 2>"$out/pytorch.err"

echo
echo "AlexNet, float32, one GPU ($(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1))"
printf "%-6s | %-22s | %-22s | %-24s | %-24s\n" batch "engine train iter/s" "pytorch train iter/s" "engine forward images/s" "pytorch forward images/s"
for batch in "${batches[@]}"; do
  read -r pt_train pt_forward < <(python3 - "$batch" "$out/pytorch.jsonl" <<'PY'
import json, sys
batch = int(sys.argv[1])
for line in open(sys.argv[2]):
    r = json.loads(line)
    if r["batch"] == batch:
        print(f'{r["train_iterations_per_s"]:.2f} {r["forward_images_per_s"]:.0f}')
        break
else:
    print("n/a n/a")
PY
  )
  printf "%-6s | %-22s | %-22s | %-24s | %-24s\n" "$batch" "${train_its[$batch]}" "$pt_train" "${forward_ips[$batch]}" "$pt_forward"
done

# Mixed precision on the same nets: `engine time` forward + backward per precision (bf16 and
# fp16 round the convolutions' and inner products' operands and run them on tensor cores).
echo
echo "AlexNet on one GPU by precision: engine time, forward + backward ms per batch"
printf "%-6s | %-10s | %-10s | %-10s\n" batch fp32 bf16 fp16
for batch in "${batches[@]}"; do
  row=()
  for precision in fp32 bf16 fp16; do
    "$bin/engine" time --model="$work/net_$batch.prototxt" $device --precision=$precision \
      --iterations=$iterations >"$out/engine_time_${precision}_$batch.log" 2>&1
    row+=("$(grep "Average Forward-Backward" "$out/engine_time_${precision}_$batch.log" |
      grep -o "[0-9.]* ms" | cut -d' ' -f1)")
  done
  printf "%-6s | %-10s | %-10s | %-10s\n" "$batch" "${row[0]:-n/a}" "${row[1]:-n/a}" "${row[2]:-n/a}"
done
