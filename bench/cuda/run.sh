#!/usr/bin/env bash
# CUDA backend benchmark (issue 6), one command: builds (Release, CUDA on), runs the CUDA tests,
# then on the GPU measures integration-only frames/s for EIGER 4M frames (1D no split, 1D bbox,
# 2D bbox 360 x 1000) against the device-to-device copy bandwidth of the same run, the
# host-to-device rate from pinned memory, the CUDA decoders' kernel GB/s of decoded output
# (bitshuffle-LZ4 uint32 and uint16, LZ4 uint16; issue 13, never yet run on a GPU), and azflowd
# end to end with 1, 2, 4 and 8 integrate workers per GPU on a 1000-frame series. Prints a short
# table last.
#   bench/cuda/run.sh
#   FRAMES=200 WORKERS_PER_GPU="1 4" bench/cuda/run.sh
# Without a GPU it says so after the build and the (skipping) tests and exits 0 (non-zero if a
# test failed; with a GPU a failed test does not stop the benchmark, only its exit status).
# BUILD (default build-cuda), BENCH_DIR (default /tmp/azflow-bench-daemon-$FRAMES, shared with
# bench/daemon/run.sh), INTEGRATE_DATA (default /tmp/azflow-bench-integrate, shared with
# bench/integrate/run.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${BUILD:-$ROOT/build-cuda}"
FRAMES="${FRAMES:-1000}"
WORKERS_PER_GPU="${WORKERS_PER_GPU:-1 2 4 8}"
BENCH_DIR="${BENCH_DIR:-/tmp/azflow-bench-daemon-$FRAMES}"
INTEGRATE_DATA="${INTEGRATE_DATA:-/tmp/azflow-bench-integrate}"
GEN="${GEN:-$ROOT/../shared/tools/gen_dataset.py}"
JOBS="${JOBS:-$(nproc)}"

echo "== build (Release, CUDA on) in $BUILD"
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DAZFLOW_WITH_CUDA=ON >/dev/null
cmake --build "$BUILD" -j"$JOBS" --target azflow_cuda_bench azflow_cuda_integrator_test \
  azflow_gpu_plan_test azflowd azflow-stage azflow azflowctl daemon_gpu_test \
  daemon_gpu_placement_test decompress_gpu_decode_test decompress_cuda_decode_test

echo "== CUDA tests"
# A failing test does not stop the benchmark (a device session is short); the script's exit
# status says so at the end.
tests_status=0
ctest --test-dir "$BUILD" --output-on-failure \
  -R 'CudaIntegratorTest|CudaProbe|CudaOptionsCheck|GpuEmulation|GpuPlan|GpuPlacement|GpuConfigKeys|DaemonGpu|CudaDecode|GpuDecodeHost' ||
  tests_status=$?

probe=$("$BUILD/daemon/azflow-stage" --probe-gpus)
if /usr/bin/python3 -c 'import json,sys; sys.exit(0 if json.loads(sys.argv[1])["devices"] else 1)' "$probe"; then
  :
else
  reason=$(/usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])["reason"])' "$probe")
  echo
  echo "no GPU on this machine ($reason): the CUDA code was built and its tests ran (device tests"
  echo "skipped); nothing to benchmark. Run bench/cuda/run.sh on a GPU node."
  exit "$tests_status"
fi
echo "GPUs: $probe"

# compute-sanitizer's memcheck on the CUDA decoder tests, where the machine has it (bounded, so a
# slow or unsupported sanitizer cannot eat the session).
sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
if [[ -x $sanitizer ]]; then
  echo "== compute-sanitizer memcheck: CUDA decoder tests"
  timeout 180 "$sanitizer" --tool memcheck --error-exitcode 1 \
    "$BUILD/tests/decompress/decompress_cuda_decode_test" ||
    echo "compute-sanitizer: FAILED, timed out or unsupported here (see above)"
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== integration and decoding on the GPU (10 EIGER 4M frames of bench/integrate)"
if [[ ! -f $INTEGRATE_DATA/eiger4m_master.h5 ]]; then
  mkdir -p "$INTEGRATE_DATA"
  /usr/bin/python3 "$ROOT/tests/cli/fixtures/make_fixtures.py" --demo --out-dir "$INTEGRATE_DATA" \
    --frames 10
fi
"$BUILD/bench/cuda/azflow_cuda_bench" --poni "$INTEGRATE_DATA/eiger4m.poni" \
  --data "$INTEGRATE_DATA/eiger4m_master.h5" --frames 16 --batch 8 --repeats 20 \
  --json "$out/kernel.json"

echo "== azflowd end to end, $FRAMES frames, workers per GPU: $WORKERS_PER_GPU"
if [[ ! -f $BENCH_DIR/bench_master.h5 ]]; then
  /usr/bin/python3 "$GEN" --out-dir "$BENCH_DIR" --name bench --frames "$FRAMES" \
    --detector Eiger4M --dtype uint32 --compression bslz4 --seed 7 --quiet
fi
# shellcheck disable=SC2086
/usr/bin/python3 "$ROOT/bench/cuda/daemon_gpu_bench.py" --master "$BENCH_DIR/bench_master.h5" \
  --poni "$BENCH_DIR/bench.poni" --azflowd "$BUILD/daemon/azflowd" --frames "$FRAMES" \
  --workers-per-gpu $WORKERS_PER_GPU --json "$out/daemon.json"

/usr/bin/python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
k = json.load(open(f"{out}/kernel.json"))
d = json.load(open(f"{out}/daemon.json"))
print(f"\n{k['device']} (sm {k['compute_capability']}), EIGER 4M {k['rows']} x {k['cols']} uint32, "
      f"batch {k['batch']}")
print(f"device-to-device copy {k['d2d_GBps']:.0f} GB/s (read + write), "
      f"host-to-device from pinned {k['h2d_pinned_GBps']:.1f} GB/s")
print(f"{'mode':18s} {'kernel f/s':>10s} {'MB/frame':>9s} {'GB/s':>7s} {'% d2d':>6s} "
      f"{'+copies f/s':>11s} {'rel diff':>9s}")
for r in k["results"]:
    print(f"{r['mode']:18s} {r['kernel_fps']:10.0f} {r['bytes_per_frame'] / 1e6:9.1f} "
          f"{r['kernel_GBps']:7.0f} {100 * r['fraction_of_d2d']:5.0f}% {r['with_copies_fps']:11.0f} "
          f"{r['max_rel_diff_vs_cpu']:9.1e}")
print(f"\n{'decoder (batch)':22s} {'frames':>6s} {'ratio':>6s} {'kernel GB/s':>11s} "
      f"{'first call GB/s':>15s} {'bit-exact':>9s}")
for r in k.get("decode", []):
    if "error" in r:
        print(f"{r['codec']:22s} FAILED: {r['error']}")
        continue
    print(f"{r['codec']:22s} {r['frames']:6d} {r['ratio']:6.2f} {r['kernel_GBps']:11.1f} "
          f"{r['first_call_GBps']:15.1f} {'yes' if r['bit_exact'] else 'NO':>9s}")
print(f"\nazflowd, {d['frames']} frames, {d['decompress_workers']} decompress workers")
print(f"{'workers/GPU':>11s} {'integrate':>9s} {'devices':>16s} {'cold f/s':>9s} {'warm f/s':>9s}")
for r in d["runs"]:
    print(f"{r['workers_per_gpu']:11d} {r['integrate_workers']:9d} {','.join(r['devices']):>16s} "
          f"{r['cold_fps']:9.1f} {r['warm_fps']:9.1f}")
PY
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; date $(date -u +%F)"
if [[ $tests_status -ne 0 ]]; then
  echo "CUDA tests FAILED (ctest status $tests_status): see their output above" >&2
  exit "$tests_status"
fi
