#!/usr/bin/env bash
# Decoding benchmark (issue 3): makes an EIGER 4M uint32 bitshuffle-LZ4 dataset of 20 frames with
# the shared gen_dataset.py, builds decode_bench and runs it single-threaded.
#   bench/decode/run.sh [TOOLS_DIR] [REPS]   (REPS default 9, run round-robin; see decode_bench.cpp)
# TOOLS_DIR: folder of gen_dataset.py; default $AZFLOW_SHARED_TOOLS, else ../shared/tools
# relative to the repository root. AZFLOW_BUILD_DIR (default build-decode) is the build folder,
# AZFLOW_BENCH_DATA (default /tmp/azflow-bench-decode) where the dataset is kept.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tools=${1:-${AZFLOW_SHARED_TOOLS:-$root/../shared/tools}}
reps=${2:-9}
build=${AZFLOW_BUILD_DIR:-$root/build-decode}
data=${AZFLOW_BENCH_DATA:-/tmp/azflow-bench-decode}

if [[ ! -f $data/bench_master.h5 ]]; then
  mkdir -p "$data"
  /usr/bin/python3 "$tools/gen_dataset.py" --out-dir "$data" --name bench --frames 20 \
    --detector Eiger4M --dtype uint32 --compression bslz4 --seed 7
fi
if [[ ! -f $build/build.ninja && ! -f $build/Makefile ]]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
cmake --build "$build" --target decode_bench -j2
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u +%Y-%m-%dT%H:%MZ)"
taskset -c 0 "$build/bench/decode/decode_bench" "$data/bench_master.h5" "$reps"
