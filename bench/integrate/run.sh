#!/usr/bin/env bash
# Integration benchmark (issue 2), side by side in one run: azflow's CPU integrator vs pyFAI 0.21
# (integrate1d / integrate2d with method (split, "csr", "cython")) on the same EIGER 4M frames and
# thread counts, beside the memory bandwidth measured by a copy. Prints a table with ratios.
#   bench/integrate/run.sh [FRAMES] [MAX_THREADS]
# AZFLOW_BUILD_DIR (default build-bench), AZFLOW_BENCH_DATA (default /tmp/azflow-bench-integrate:
# a 10-frame EIGER 4M bitshuffle-LZ4 series made by the project's own generator).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
frames=${1:-10}
max_threads=${2:-$(nproc)}
build=${AZFLOW_BUILD_DIR:-$root/build-bench}
data=${AZFLOW_BENCH_DATA:-/tmp/azflow-bench-integrate}

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DAZFLOW_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" --target azflow_integrate_bench -j"$(nproc)"

master="$data/eiger4m_master.h5"
poni="$data/eiger4m.poni"
if [[ ! -f $master ]]; then
  mkdir -p "$data"
  /usr/bin/python3 "$root/tests/cli/fixtures/make_fixtures.py" --demo --out-dir "$data" --frames "$frames"
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$build/bench/integrate/azflow_integrate_bench" --poni "$poni" --data "$master" --frames "$frames" \
  --threads "$max_threads" --json "$out/azflow.json"
for ((t = 1; t <= max_threads; t++)); do
  /usr/bin/python3 "$root/bench/integrate/pyfai_bench.py" --poni "$poni" --data-h5 "$master" \
    --frames "$frames" --threads "$t" --json "$out/pyfai_$t.json" >/dev/null
done

/usr/bin/python3 - "$out" "$max_threads" <<'PY'
import json, sys
out, max_t = sys.argv[1], int(sys.argv[2])
az = json.load(open(f"{out}/azflow.json"))
bw = az["copy_bandwidth_GBps"]
print(f"\n{'mode':18s} {'threads':>7s} {'azflow f/s':>11s} {'pyFAI f/s':>10s} {'ratio':>7s} "
      f"{'azflow GB/s':>11s} {'copy GB/s':>9s} {'% copy':>6s}")
for r in az["results"]:
    t = r["threads"]
    py = json.load(open(f"{out}/pyfai_{t}.json"))
    name = r["mode"].replace("_360x1000", "")
    pf = next((m["median_fps"] for m in py["methods"] if m["method"] == name), None)
    gbps = r["frames_per_s"] * r["bytes_per_frame"] / 1e9
    ratio = f"{r['frames_per_s'] / pf:7.1f}" if pf else "      -"
    print(f"{r['mode']:18s} {t:7d} {r['frames_per_s']:11.1f} {pf or float('nan'):10.2f} {ratio} "
          f"{gbps:11.2f} {bw[str(t)]:9.2f} {100 * gbps / bw[str(t)]:5.0f}%")
PY
