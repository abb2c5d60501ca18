#!/usr/bin/env bash
# Can the Data layer feed AlexNet on this machine? Images per second that the Data layer
# delivers with AlexNet's training transform (crop 227, mirror, mean file, lighting noise 0.1;
# batch 128), against the images per second that AlexNet itself trains at (forward + backward,
# batch 32, CPU, default engine), on a synthetic ImageNet (data/synthetic_imagenet.sh: JPEGs of
# 200-400 px resized to 256 x 256) stored raw and JPEG-encoded, with 1 and 2 prefetch threads.
#
# How the data rate is measured: `engine time` of a net holding only the Data layer and a
# Silence layer. The layer's workers start at net setup and `engine time` runs one untimed
# pass, which waits for the first batch; after that, every timed forward waits for the next
# prefetched batch (data/prefetch.cpp: acquire() blocks until batch b is READY) and copies it
# into the top. The consumer is far faster than the workers, so the queue is empty in steady
# state and each forward takes the production time of one batch (divided among the threads).
# Only the start is not steady: batches made while the net was set up (at most the prefetch
# depth, max(4, threads)) come out at once. So the first SKIP iterations' times are dropped and
# the rate is 128 x (N - SKIP) / (their summed time); the untrimmed average of all N is printed
# beside it, for contrast.
#
# Last, `engine time` of models/alexnet/train_val.prototxt's TRAIN net (batch 32) on the
# encoded set: the net and the Data layer sharing the cores, as in training.
# Usage: bench/data_layer.sh [IMAGES] [ITERATIONS]   (defaults 1000, 24; build first)
set -euo pipefail
cd "$(dirname "$0")/.."
images=${1:-1000}
iterations=${2:-24}
skip=4
bin=build/bin
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=bench/results/data_layer.txt
mkdir -p bench/results

classes=10
ENGINE_BIN=$bin data/synthetic_imagenet.sh "$work/set" "$classes" $(( images / classes )) 1 \
  >"$work/make.log" 2>&1 || { cat "$work/make.log"; exit 1; }
# The same images as raw records (synthetic_imagenet.sh encodes the training set).
$bin/convert_imageset --resize_height=256 --resize_width=256 --shuffle \
  "$work/set/train/" "$work/set/train.txt" "$work/set/train_raw_lmdb" >/dev/null 2>&1
mean=$work/set/imagenet_mean.binaryproto

# Mean milliseconds of the timed iterations after the first $skip, and of all of them.
per_batch_ms() {
  awk -v skip="$skip" '/^Iteration: [0-9]+ forward-backward time:/ {
      n++; t = $5; all += t; if (n > skip) { kept += t; k++ } }
    END { if (k == 0) exit 1; printf "%.2f %.2f\n", kept / k, all / n }' "$1"
}

report() { printf "%s\n" "$*" | tee -a "$out.tmp"; }
: >"$out.tmp"
report "Data layer vs AlexNet, $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p')), $(date -u +%F)"
report "Load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) (other processes share the cores)"
report "Synthetic ImageNet: $images training images, 256 x 256 records; Data layer batch 128,"
report "crop 227, mirror, mean file, lighting_std 0.1; $iterations timed batches, first $skip dropped."
report ""
report "$(printf '%-34s %12s %10s %18s' 'configuration' 'ms/batch' 'images/s' '(all N: images/s)')"

data_rates=()
for kind in raw encoded; do
  db=$work/set/ilsvrc12_train_lmdb
  [ "$kind" = raw ] && db=$work/set/train_raw_lmdb
  for threads in 1 2; do
    net=$work/data_${kind}_${threads}.prototxt
    cat >"$net" <<NET
name: "DataOnly"
layer {
  name: "data" type: "Data" top: "data" top: "label"
  transform_param { mirror: true crop_size: 227 mean_file: "$mean" lighting_std: 0.1 }
  data_param { source: "$db" batch_size: 128 backend: LMDB threads: $threads }
}
layer { name: "silence" type: "Silence" bottom: "data" bottom: "label" }
NET
    $bin/engine time --model="$net" --iterations="$iterations" >"$work/time.log" 2>&1 ||
      { cat "$work/time.log"; exit 1; }
    read -r kept all < <(per_batch_ms "$work/time.log")
    data_rates+=("$kind records, threads $threads:$(echo "128000 / $kept" | bc -l)")
    report "$(printf '%-34s %12.1f %10.0f %18.0f' "Data, $kind records, threads $threads" \
      "$kept" "$(echo "128000 / $kept" | bc -l)" "$(echo "128000 / $all" | bc -l)")"
  done
done

# AlexNet alone: the deploy net with a label and a loss appended, so that backward runs (a net
# without a loss needs no backward).
net=$work/alexnet.prototxt
cat models/alexnet/deploy.prototxt - >"$net" <<'NET'
layer { name: "label" type: "Input" top: "label" input_param { shape { dim: 10 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc8" bottom: "label" top: "loss" }
NET
$bin/engine time --model="$net" --batch=32 --iterations=6 >"$work/alexnet.log" 2>&1 ||
  { cat "$work/alexnet.log"; exit 1; }
alexnet_ms=$(sed -n 's/^Average Forward-Backward: \([0-9.]*\) ms./\1/p' "$work/alexnet.log")
alexnet_rate=$(echo "32000 / $alexnet_ms" | bc -l)
report "$(printf '%-34s %12.1f %10.0f' "AlexNet fwd+bwd, batch 32" "$alexnet_ms" "$alexnet_rate")"

# Both together: the training net, fed by the Data layer (encoded records, default threads).
sed -e "s|data/ilsvrc12/|$work/set/|g" -e "s|batch_size: 128 |batch_size: 32 |" \
  models/alexnet/train_val.prototxt >"$work/train_val.prototxt"
$bin/engine time --model="$work/train_val.prototxt" --iterations=10 >"$work/train.log" 2>&1 ||
  { cat "$work/train.log"; exit 1; }
train_ms=$(sed -n 's/^Average Forward-Backward: \([0-9.]*\) ms./\1/p' "$work/train.log")
data_ms=$(awk '$1 == "data" && $2 == "forward:" { print $3 }' "$work/train.log")
report "$(printf '%-34s %12.1f %10.0f   (of which waiting on data: %s ms)' \
  "AlexNet TRAIN net + Data, batch 32" "$train_ms" "$(echo "32000 / $train_ms" | bc -l)" \
  "$data_ms")"
report ""
report "Data/AlexNet ratio (data images/s over AlexNet's):"
for entry in "${data_rates[@]}"; do
  report "$(printf '  %-28s %6.1fx' "${entry%%:*}" "$(echo "${entry#*:} / $alexnet_rate" | bc -l)")"
done
mv "$out.tmp" "$out"
