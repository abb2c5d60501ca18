#!/usr/bin/env bash
# Runs the CPU test suite under the sanitizers (clang; CUDA and the Python package off).
#   scripts/sanitize.sh [address,undefined | thread] [extra ctest arguments]
# address,undefined (the default): AddressSanitizer, LeakSanitizer and UndefinedBehaviorSanitizer
#   over every C++ test program, in build-fuzz/ (the same build as scripts/fuzz.sh's).
# thread: ThreadSanitizer over the tests of the threaded code (prefetching data layers, the
#   ordered parallel map of the dataset tools, training through the engine command), in
#   build-tsan/.
# Any report fails the test that made it.
set -euo pipefail
cd "$(dirname "$0")/.."
sanitizers=${1:-address,undefined}
shift || true
scripts/install-deps.sh >/dev/null

case $sanitizers in
  address,undefined)
    build=build-fuzz
    options=(-DENGINE_FUZZ=ON)
    targets=(all)
    ;;
  thread)
    build=build-tsan
    options=()
    targets=(ordered_parallel_map_test data_layer_test tools_test engine_cli_test
             fault_injection_test)
    ;;
  *)
    echo "usage: scripts/sanitize.sh [address,undefined | thread] [ctest arguments]" >&2
    exit 2
    ;;
esac

CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DENGINE_SANITIZE="$sanitizers" "${options[@]}" -DENGINE_CUDA=OFF -DENGINE_TESTS=ON \
  -DENGINE_PYTHON=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"

# allocator_may_return_null: memory refused is the engine's error to report, not ASan's.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1
export LSAN_OPTIONS=suppressions=$PWD/scripts/lsan-suppressions.txt:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# detect_deadlocks=0: libstdc++'s std::mutex never calls pthread_mutex_destroy, so ThreadSanitizer
# takes two mutexes that lived at one address, in turn, for one, and reports lock-order
# inversions between unrelated objects. Data races are still reported.
export TSAN_OPTIONS=halt_on_error=1:detect_deadlocks=0
if [ "$sanitizers" = thread ]; then
  # oneDNN's and OpenBLAS's thread pools are not instrumented: ThreadSanitizer cannot see their
  # barriers and would report their writes as races. One thread each leaves the engine's own
  # threads (prefetching, the parallel map) to check.
  export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
fi
cd "$build"
if [ "${targets[0]}" != all ]; then
  exec ctest --output-on-failure -j"$(nproc)" -R "^($(IFS='|'; echo "${targets[*]}"))\$" "$@"
fi
# The tests under mpirun: OpenMPI unloads the components whose allocations it never frees, so
# only the slow unwinder reaches the frames of OpenMPI's own libraries that the suppressions
# name.
mpi='^(data_parallel_test|model_parallel_test|model_parallel_mpi|model_parallel_mpi4)$'
status=0
ctest --output-on-failure -j"$(nproc)" -E "$mpi" "$@" || status=$?
ASAN_OPTIONS=$ASAN_OPTIONS:fast_unwind_on_malloc=0 ctest --output-on-failure -j"$(nproc)" -R "$mpi" \
  "$@" || status=$?
exit $status
