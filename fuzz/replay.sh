#!/usr/bin/env bash
# Runs each fuzz target (built as BUILD/bin/fuzz_NAME_replay) on its seed corpus, made here by
# fuzz/make_corpus.py into BUILD/fuzz-corpus, and on every input that once crashed it
# (fuzz/regressions/NAME). ctest's fuzz_replay test.
#   fuzz/replay.sh BUILD TARGET...
set -euo pipefail
build=$1
shift
source_dir=$(cd "$(dirname "$0")/.." && pwd)
corpus=$build/fuzz-corpus
rm -rf "$corpus"
/usr/bin/python3 "$source_dir/fuzz/make_corpus.py" "$corpus"
for target in "$@"; do
  inputs=("$corpus/$target")
  [ -d "$source_dir/fuzz/regressions/$target" ] && inputs+=("$source_dir/fuzz/regressions/$target")
  "$build/bin/fuzz_${target}_replay" "${inputs[@]}"
done
