#!/bin/bash
# Pipeline daemon benchmark (issue 4): azflowd end to end vs `azflow integrate` vs pyFAI on one
# EIGER 4M bitshuffle-LZ4 series.
#   bench/daemon/run.sh                 # 1000 frames (gen_dataset.py takes ~2 min, 4 GB)
#   FRAMES=200 REPEATS=3 WORKERS=2 THREADS=2 PYFAI_FRAMES=30 bench/daemon/run.sh
# Data is made once into $BENCH_DIR (default /tmp/azflow-bench-daemon-$FRAMES) and kept.
# Results: a table on stdout and $BENCH_DIR/pipeline.json.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
FRAMES="${FRAMES:-1000}"
REPEATS="${REPEATS:-3}"
WORKERS="${WORKERS:-2}"
THREADS="${THREADS:-2}"
PYFAI_FRAMES="${PYFAI_FRAMES:-50}"
BUILD="${BUILD:-$ROOT/build-daemon}"
BENCH_DIR="${BENCH_DIR:-/tmp/azflow-bench-daemon-$FRAMES}"
GEN="${GEN:-$ROOT/../shared/tools/gen_dataset.py}"

cmake -S "$ROOT" -B "$BUILD" -G Ninja -DAZFLOW_WITH_CUDA=OFF >/dev/null
cmake --build "$BUILD" --target azflowd azflow-stage azflow -j2 >/dev/null
if [ ! -f "$BENCH_DIR/bench_master.h5" ]; then
  /usr/bin/python3 "$GEN" --out-dir "$BENCH_DIR" --name bench --frames "$FRAMES" \
    --detector Eiger4M --dtype uint32 --compression bslz4 --seed 7 --quiet
fi
/usr/bin/python3 "$ROOT/bench/daemon/pipeline_bench.py" --master "$BENCH_DIR/bench_master.h5" \
  --poni "$BENCH_DIR/bench.poni" --azflowd "$BUILD/daemon/azflowd" --azflow "$BUILD/cli/azflow" \
  --workers "$WORKERS" --threads "$THREADS" --repeats "$REPEATS" --pyfai-frames "$PYFAI_FRAMES" \
  --json "$BENCH_DIR/pipeline.json"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; date $(date -u +%F)"
