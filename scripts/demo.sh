#!/usr/bin/env bash
# The demo: installs the dependencies, builds, and times AlexNet (BVLC's deploy net, batch 32,
# with a softmax loss) forward and backward on the reference and the oneDNN CPU paths.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
bench/alexnet_cpu.sh 5 32
