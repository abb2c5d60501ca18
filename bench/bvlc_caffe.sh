#!/usr/bin/env bash
# BVLC Caffe, built here so that the benchmarks can measure it in the same run as ours instead of
# quoting old figures. BVLC Caffe is not packaged in Debian 12; PyPI's sdist brocolli-caffe 9.0.2
# is BVLC's tree at its last commit (9b891540183ddc834a02b2bd81b31afae71b2153) with some extra
# layers (SSD's, upsampling, ...) that the benchmarks do not use. Nothing of it enters this
# repository: the sdist is fetched at run time, its sha256 pinned below so that a changed upload
# is refused.
# Build: CPU_ONLY, BLAS=open (Debian's OpenBLAS), LMDB on (the benchmarks' data), no OpenCV,
# LevelDB or Python; Caffe's own Release flags (-O2, no -march=native, like our portable build).
# It uses Caffe's Makefile: the sdist's CMakeLists were cut down to build only its Python
# module (the caffe library and tools are commented out), while its Makefile is BVLC's.
# Made once (16 minutes on a busy 2-core Zen 3) under ~/.cache/engine/bvlc-caffe/<version>/
# (BVLC_CAFFE_DIR to move it), reused when its stamp file is there. Installs the missing Debian
# packages (as root).
# Prints the path of the caffe binary on its last line; everything else goes to the log:
#   caffe=$(bench/bvlc_caffe.sh | tail -1)
set -euo pipefail
version=9.0.2
sha256=c6410cc60bdd6db685d441b66be7df05410f8850ac88d6b75d48ef9b2315c08a
root=${BVLC_CAFFE_DIR:-$HOME/.cache/engine/bvlc-caffe/$version}
build=$root/build
caffe=$build/tools/caffe.bin
stamp=$build/.engine-built
if [ -f "$stamp" ] && [ -x "$caffe" ]; then
  echo "$caffe"
  exit 0
fi

mkdir -p "$root"
log=$root/build.log
echo "building BVLC Caffe $version into $build (15-30 min the first time; log: $log)" >&2
# fd 3 and 4 keep the caller's stdout and stderr.
exec 3>&1 4>&2 >"$log" 2>&1
# On failure, the first error line of the log goes to the caller (bench scripts quote it).
failed() {
  echo "BVLC Caffe build failed: $(grep -m1 -E 'error:|Error|ERROR|refus' "$log" || echo "exit $1")" \
    "(log: $log)" >&4
}
trap 'status=$?; [ $status = 0 ] || failed $status' EXIT
start=$(date +%s)

# Caffe's build dependencies; apt only for those missing (liblmdb, protobuf, glog, gflags and
# OpenBLAS are usually there already for our own build).
packages="g++ make protobuf-compiler libprotobuf-dev libgoogle-glog-dev libgflags-dev
  libboost-system-dev libboost-thread-dev libboost-filesystem-dev libboost-regex-dev
  libhdf5-dev liblmdb-dev libopenblas-dev"
missing=()
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# The sdist, from PyPI through pip (Debian's pip may download though it may not install).
sdist=$root/brocolli-caffe-$version.tar.gz
if ! [ -f "$sdist" ] || ! echo "$sha256  $sdist" | sha256sum -c --quiet; then
  rm -f "$sdist"
  /usr/bin/python3 -m pip download --disable-pip-version-check --no-deps --no-binary :all: \
    -d "$root" "brocolli-caffe==$version"
  echo "$sha256  $sdist" | sha256sum -c ||
    { echo "brocolli-caffe $version's sdist is not the one pinned here; refusing it" >&2; exit 1; }
fi

# The sources, unpacked once (their stamp after the whole tree): an interrupted build resumes
# where it stopped, make being incremental. They build unpatched with Debian 12's gcc 12,
# protobuf 3.21 and boost 1.74 (the sdist already has the protobuf 3.x SetTotalBytesLimit fix).
if ! [ -f "$root/src/.engine-unpacked" ]; then
  rm -rf "$root/src" "$build"
  mkdir -p "$root/src"
  tar -xzf "$sdist" -C "$root/src" --strip-components=1
  touch "$root/src/.engine-unpacked"
fi
cd "$root/src"
# The sdist's Makefile forces BUILD_DIR to "temp" after reading the config; the build directory is
# given as RELEASE_BUILD_DIR below instead, so only the "temp" link lands in the sources.
# Debian puts HDF5's headers and libraries in a "serial" subdirectory.
multiarch=$(gcc -print-multiarch)
cat >Makefile.config <<CONFIG
CPU_ONLY := 1
USE_OPENCV := 0
USE_LEVELDB := 0
USE_LMDB := 1
BLAS := open
INCLUDE_DIRS := /usr/include/hdf5/serial
LIBRARY_DIRS := /usr/lib/$multiarch/hdf5/serial
Q ?= @
CONFIG
nice -n 19 make -j"${JOBS:-$(nproc)}" RELEASE_BUILD_DIR="$build" all
"$caffe" --version
echo "built in $(( $(date +%s) - start )) s"
touch "$stamp"
echo "$caffe" >&3
