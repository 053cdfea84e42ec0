#!/bin/bash
# Federation benchmark (issue 7): frames/s of one split job by one azflowd pinned to one core vs
# two federated azflowd pinned to one core each, on the EIGER 4M bitshuffle-LZ4 series of
# bench/daemon/run.sh, plus the coordinator's CPU cost per remotely integrated frame.
#   bench/federation/run.sh                      # 1000 frames, 3 repeats
#   FRAMES=200 REPEATS=1 bench/federation/run.sh
# Needs 2 cores (taskset -c 0 and -c 1); run it on an otherwise idle machine.
# Data is made once into $BENCH_DIR (default /tmp/azflow-bench-daemon-$FRAMES, shared with
# bench/daemon/run.sh) and kept. Results: a table on stdout and $BENCH_DIR/federation.json.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
FRAMES="${FRAMES:-1000}"
REPEATS="${REPEATS:-3}"
SHARD_FRAMES="${SHARD_FRAMES:-20}"
BUILD="${BUILD:-$ROOT/build-daemon}"
BENCH_DIR="${BENCH_DIR:-/tmp/azflow-bench-daemon-$FRAMES}"
GEN="${GEN:-$ROOT/../shared/tools/gen_dataset.py}"

cmake -S "$ROOT" -B "$BUILD" -G Ninja -DAZFLOW_WITH_CUDA=OFF >/dev/null
cmake --build "$BUILD" --target azflowd azflow-stage azflowctl -j2 >/dev/null
if [ ! -f "$BENCH_DIR/bench_master.h5" ]; then
  /usr/bin/python3 "$GEN" --out-dir "$BENCH_DIR" --name bench --frames "$FRAMES" \
    --detector Eiger4M --dtype uint32 --compression bslz4 --seed 7 --quiet
fi
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 "$ROOT/bench/federation/federation_bench.py" \
  --master "$BENCH_DIR/bench_master.h5" --poni "$BENCH_DIR/bench.poni" \
  --azflowd "$BUILD/daemon/azflowd" --azflowctl "$BUILD/ctl/azflowctl" \
  --repeats "$REPEATS" --shard-frames "$SHARD_FRAMES" --json "$BENCH_DIR/federation.json"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; date $(date -u +%F)"
