#!/usr/bin/env bash
# Decoding benchmark (issue 3): makes an EIGER 4M uint32 bitshuffle-LZ4 dataset of 20 frames with
# the shared gen_dataset.py, builds decode_bench and runs it single-threaded.
#   bench/decode/run.sh [TOOLS_DIR] [REPS]   (REPS default 9, run round-robin; see decode_bench.cpp)
# TOOLS_DIR: folder of gen_dataset.py; default $AZFLOW_SHARED_TOOLS, else ../shared/tools
# relative to the repository root. AZFLOW_BUILD_DIR (default build-decode) is the build folder,
# AZFLOW_BENCH_DATA (default /tmp/azflow-bench-decode) where the dataset is kept.
#
# Page cache state: how a file came into the page cache changes both the copy (H5Dread_chunk)
# and the mapped path (folio size: a 4 KiB folio costs one page-table entry and one page-cache
# lookup per 4 KiB, a large folio one per folio). AZFLOW_BENCH_PAGECACHE lists the states to run,
# in turn (default "reread small"):
#   reread  fsync, evict (POSIX_FADV_DONTNEED) and cat the data file: as if read from disk
#           (readahead; large folios where the kernel and file system use them)
#   small   rewrite the data file in 4 KiB writes (to a temporary name, then rename): as left by
#           a writer issuing small writes (4 KiB folios)
#   keep    leave the page cache as it is
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
pagecache() {  # pagecache STATE FILE
  /usr/bin/python3 - "$1" "$2" <<'PY'
import os, sys
state, path = sys.argv[1], sys.argv[2]
if state == "small":
    tmp = path + ".rewrite"
    with open(path, "rb") as src, open(tmp, "wb", buffering=0) as dst:
        while block := src.read(4096):
            dst.write(block)
    os.rename(tmp, path)
elif state == "reread":
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    while os.read(fd, 1 << 20):
        pass
    os.close(fd)
elif state != "keep":
    sys.exit(f"AZFLOW_BENCH_PAGECACHE: unknown state {state!r} (reread, small, keep)")
PY
}
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, kernel $(uname -r)"
for state in ${AZFLOW_BENCH_PAGECACHE:-reread small}; do
  for f in "$data"/bench_data_*.h5; do pagecache "$state" "$f"; done
  echo "== page cache: $state; $(date -u +%Y-%m-%dT%H:%MZ)"
  taskset -c 0 "$build/bench/decode/decode_bench" "$data/bench_master.h5" "$reps"
done
