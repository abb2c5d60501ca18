#!/usr/bin/env bash
# Fuzzes every reader of outside data: builds the fuzz targets (fuzz/) as libFuzzer programs
# with clang, AddressSanitizer and UndefinedBehaviorSanitizer in build-fuzz/, makes the seed
# corpus (fuzz/make_corpus.py, from ../shared/caffe-models and the engine's own files), and
# runs each target for SECONDS (default 25), or until it has run N inputs, one target after
# another. Prints each target's executions, seconds, coverage and corpus size. A crash, leak or
# sanitizer report stops that target, with the input saved under build-fuzz/findings/TARGET/
# (add it to fuzz/regressions/TARGET/ once fixed: ctest's fuzz_replay then replays it on
# every test run); the script goes on to the next target and fails at the end.
#   scripts/fuzz.sh [SECONDS | --runs=N] [TARGET...]
# FUZZ_SEED=N makes the run repeatable (libFuzzer's -seed; by default a fresh one each run).
set -euo pipefail
cd "$(dirname "$0")/.."
limit=(-max_total_time="${1:-25}")
[[ ${1:-} == --runs=* ]] && limit=(-runs="${1#--runs=}")
[ -n "${FUZZ_SEED:-}" ] && limit+=(-seed="$FUZZ_SEED")
shift || true
scripts/install-deps.sh >/dev/null
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=($(ls fuzz/*_fuzzer.cpp | sed -e 's|fuzz/||' -e 's|_fuzzer.cpp||'))
fi

# The seed corpus needs the Python package of the ordinary build.
if [ ! -d build/python/engine ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j"$(nproc)" --target engine_python >/dev/null
fi
# The same build as scripts/sanitize.sh's (tests ON here too, so that neither undoes the other).
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DENGINE_FUZZ=ON \
  -DENGINE_SANITIZE=address,undefined -DENGINE_CUDA=OFF -DENGINE_TESTS=ON -DENGINE_PYTHON=OFF \
  >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]/#/fuzz_}" >/dev/null

corpus=build-fuzz/corpus
rm -rf "$corpus"
PYTHONPATH=build/python /usr/bin/python3 fuzz/make_corpus.py "$corpus"
# Nets the targets build keep their implementation choices (core/fastest_layer.cpp) to themselves.
export ENGINE_CHOICES=off
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
failed=0
printf "%-14s %12s %8s %8s %8s %8s\n" target executions seconds "exec/s" coverage corpus
for target in "${targets[@]}"; do
  mkdir -p "build-fuzz/findings/$target" "build-fuzz/grown/$target"
  log=build-fuzz/findings/$target.log
  seeds=("$corpus/$target")
  [ -d "fuzz/regressions/$target" ] && seeds+=("fuzz/regressions/$target")
  start=$(date +%s)
  if ! (cd "build-fuzz/findings/$target" &&
        "../../bin/fuzz_$target" "${limit[@]}" -timeout=30 -rss_limit_mb=3072 \
          -print_final_stats=1 "../../grown/$target" "${seeds[@]/#/../../../}") >"$log" 2>&1; then
    echo "fuzz_$target found a problem; its log: $log; the input: build-fuzz/findings/$target/" >&2
    grep -m5 -E "ERROR|SUMMARY|runtime error|terminate|Check failed" "$log" >&2 || tail -20 "$log" >&2
    failed=1
    continue
  fi
  executions=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$')
  seconds=$(($(date +%s) - start))
  rate=$((executions / (seconds > 0 ? seconds : 1)))
  coverage=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
  size=$(ls "build-fuzz/grown/$target" | wc -l)
  printf "%-14s %12s %8s %8s %8s %8s\n" "$target" "$executions" "$seconds" "$rate" "$coverage" \
    "$size"
done
exit $failed
