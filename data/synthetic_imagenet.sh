#!/usr/bin/env bash
# A small synthetic stand-in for ILSVRC-2012, through the same steps as the real one: writes an
# ImageNet-shaped tree of JPEGs (tools/make_synthetic_images: class-dependent coloured shapes on
# gradients, sides of 200-400 px, deterministic) and converts it as Caffe's
# examples/imagenet/create_imagenet.sh and make_imagenet_mean.sh do, into the names
# models/alexnet reads (point its paths, or a symlink data/ilsvrc12, at OUT_DIR):
#   OUT_DIR/train/<wnid>/*.JPEG, OUT_DIR/val/*.JPEG, train.txt, val.txt, synsets.txt
#   OUT_DIR/ilsvrc12_train_lmdb   resized to 256 x 256, shuffled, JPEG-encoded records
#   OUT_DIR/ilsvrc12_val_lmdb     resized to 256 x 256, list order, raw records
#   OUT_DIR/imagenet_mean.binaryproto   the training mean, with the colour eigen-decomposition
#                                       for AlexNet's lighting noise
# Training records are encoded, as a full ImageNet needs (1.28 M raw 256 x 256 records take
# ~250 GB, as JPEG ~ a tenth of it) and the prefetch threads decode them; validation records are
# raw, so both kinds of record go through the Data layer, and the repeated validation passes
# decode nothing.
# Usage: data/synthetic_imagenet.sh OUT_DIR [CLASSES] [IMAGES_PER_CLASS] [VAL_PER_CLASS]
#        (defaults 10 classes, 100 training images per class, VAL_PER_CLASS a fifth of that)
# The tools come from build/bin, or from $ENGINE_BIN. What an earlier run wrote in OUT_DIR is
# replaced; nothing else there is touched.
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 4 ]; then
  echo "usage: $0 OUT_DIR [CLASSES] [IMAGES_PER_CLASS] [VAL_PER_CLASS]" >&2
  exit 1
fi
out=$(realpath -m "$1")
classes=${2:-10}
per_class=${3:-100}
val_per_class=${4:-$(( (per_class + 4) / 5 ))}
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=${ENGINE_BIN:-$repo/build/bin}
for tool in make_synthetic_images convert_imageset compute_image_mean; do
  if [ ! -x "$bin/$tool" ]; then
    echo "$0: $bin/$tool is missing (build the tools first, or set ENGINE_BIN)" >&2
    exit 1
  fi
done

mkdir -p "$out"
rm -rf "$out/train" "$out/val" "$out/train.txt" "$out/val.txt" "$out/synsets.txt" \
  "$out/ilsvrc12_train_lmdb" "$out/ilsvrc12_val_lmdb" "$out/imagenet_mean.binaryproto"
"$bin/make_synthetic_images" "$out" "$classes" "$per_class" "$val_per_class"
"$bin/convert_imageset" --resize_height=256 --resize_width=256 --shuffle --encoded \
  "$out/train/" "$out/train.txt" "$out/ilsvrc12_train_lmdb"
"$bin/convert_imageset" --resize_height=256 --resize_width=256 \
  "$out/val/" "$out/val.txt" "$out/ilsvrc12_val_lmdb"
"$bin/compute_image_mean" "$out/ilsvrc12_train_lmdb" "$out/imagenet_mean.binaryproto"
echo "Synthetic ImageNet ($classes classes) in $out"
