#!/usr/bin/env bash
# Fashion-MNIST (Zalando, 70000 28x28 gray images of 10 clothing classes) as LMDBs:
# installs Debian's dataset-fashion-mnist (idx files under /usr/share/datasets/fashion-mnist),
# converts it with convert_mnist_data and computes the training mean (with its colour
# eigen-decomposition for the lighting noise). Idempotent. Needs the tools built in build/bin.
# Usage: data/fashion_mnist.sh [OUTPUT_DIR]      (default data/fashion-mnist)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-data/fashion-mnist}
source_dir=/usr/share/datasets/fashion-mnist

if [ ! -f "$source_dir/train-images-idx3-ubyte.gz" ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends \
    dataset-fashion-mnist
fi

mkdir -p "$out"
for split in train t10k; do
  name=$([ "$split" = train ] && echo train || echo test)
  if [ ! -f "$out/${name}_lmdb/data.mdb" ]; then
    build/bin/convert_mnist_data "$source_dir/$split-images-idx3-ubyte.gz" \
      "$source_dir/$split-labels-idx1-ubyte.gz" "$out/${name}_lmdb"
  fi
done
if [ ! -f "$out/mean.binaryproto" ]; then
  build/bin/compute_image_mean "$out/train_lmdb" "$out/mean.binaryproto"
fi
echo "Fashion-MNIST LMDBs in $out"
