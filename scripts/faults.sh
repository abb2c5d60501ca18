#!/usr/bin/env bash
# Fault injection during training, the long run: tests/faults' tests with KILLS kills at random
# moments (default 50; CI's test run makes 4) and the other faults (snapshots that cannot be
# written, bad databases, memory refused). Prints the kill figures.
#   scripts/faults.sh [KILLS] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target fault_injection_test engine >/dev/null
log=build/faults.log
status=0
ENGINE_FAULT_KILLS=${1:-50} ENGINE_FAULT_SEED=${2:-2026} build/bin/fault_injection_test >"$log" 2>&1 ||
  status=$?
grep -E '^\[ *(OK|FAILED|PASSED|SKIPPED) *\]|figures|Failure' "$log" || true
[ $status -eq 0 ] || echo "fault_injection_test failed; its whole output: $log" >&2
exit $status
