#!/usr/bin/env bash
# The README's first command, scripts/demo, as a newcomer runs it (issue 12 item 5):
#  1. it integrates the sample with `azflow integrate` and through azflowd (enqueue, wait), both
#     results equal, and stops its daemon: no azflowd of it left, its temporary folders gone;
#  2. a second run right after it works (outputs replaced, no "already exists", no second daemon
#     on one instance);
#  3. --keep leaves the daemon running: its live page answers at the printed URL and the job is
#     succeeded in the HTTP API; the printed stop command stops it;
#  4. the README's "same by hand" daemon commands right after the demo work, twice in a row.
#   demo_test.sh BUILD_DIR SOURCE_DIR
set -uo pipefail
build=$1 src=$2
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}
work=$(mktemp -d /tmp/azflow-ops-demo.XXXXXX)
hand_pid=
cleanup() {
  [[ -n "$hand_pid" ]] && kill "$hand_pid" 2>/dev/null && wait "$hand_pid" 2>/dev/null
  rm -f "/dev/shm/azflow-lock.demohand$$"
  rm -rf "$work"
}
trap cleanup EXIT
export AZFLOW_DEMO_BUILD_DIR=$build
demo_daemons() { pgrep -f -- "--instance demo[0-9]+ " | sort; }
before=$(demo_daemons)

# 1. and 2.: two runs in a row
for run in 1 2; do
  if ! bash "$src/scripts/demo" "$work/sample" >"$work/demo-$run.log" 2>&1; then
    fail "scripts/demo run $run exited non-zero: $(tail -n 15 "$work/demo-$run.log")"
    continue
  fi
  grep -q "azflowd stopped" "$work/demo-$run.log" || fail "run $run: no 'azflowd stopped' line"
  grep -Eq "live page: http://127\.0\.0\.1:[0-9]+/#job/[0-9]+" "$work/demo-$run.log" ||
    fail "run $run: no live page URL"
  tmpdir=$(grep -o '/tmp/azflow-demo\.[A-Za-z0-9]*' "$work/demo-$run.log" | head -n 1)
  [[ -n "$tmpdir" && ! -e "$tmpdir" ]] || fail "run $run: temporary folder '$tmpdir' left behind"
  /usr/bin/python3 - "$work/sample/eiger4m_integrated.h5" "$work/sample/eiger4m_daemon.h5" <<'PY' ||
import sys, h5py, numpy as np
with h5py.File(sys.argv[1]) as a, h5py.File(sys.argv[2]) as b:
    ia, ib = a["/entry/integrate/I"][()], b["/entry/integrate/I"][()]
    assert ia.shape == ib.shape == (20, 1000), (ia.shape, ib.shape)
    assert np.allclose(a["/entry/integrate/q"][()], b["/entry/integrate/q"][()], rtol=1e-6)
    assert np.allclose(ia, ib, rtol=1e-5, atol=0, equal_nan=True), np.nanmax(abs(ia - ib))
    assert np.isfinite(ib).any() and np.nanmax(ib) > 0
PY
    fail "run $run: the daemon's result differs from azflow integrate's"
done
[[ "$(demo_daemons)" == "$before" ]] || fail "a demo azflowd is still running: $(demo_daemons)"

# 3. --keep
if bash "$src/scripts/demo" --keep "$work/sample" >"$work/demo-keep.log" 2>&1; then
  url=$(grep -o 'open http://127\.0\.0\.1:[0-9]*' "$work/demo-keep.log" | head -n 1 | cut -c6-)
  job=$(grep -o 'open http://[^ ]*#job/[0-9]*' "$work/demo-keep.log" | head -n 1 | sed 's/.*#job\///')
  stop=$(grep -o 'stop it with: .*' "$work/demo-keep.log" | cut -c15-)
  [[ -n "$url" && -n "$job" && -n "$stop" ]] || fail "--keep: no URL, job or stop command"
  get() { /usr/bin/python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' "$1"; }
  get "$url/" >"$work/page.html" && grep -qi "<html" "$work/page.html" || fail "--keep: GET $url/ failed"
  state=$(get "$url/api/v1/jobs/$job" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["job"]["state"])')
  [[ "$state" == succeeded ]] || fail "--keep: job $job is '$state' in the HTTP API"
  bash -c "$stop" || fail "--keep: the printed stop command failed: $stop"
  for _ in $(seq 50); do [[ "$(demo_daemons)" == "$before" ]] && break; sleep 0.1; done
  [[ "$(demo_daemons)" == "$before" ]] || fail "--keep: the stop command left azflowd running"
else
  fail "scripts/demo --keep exited non-zero: $(tail -n 15 "$work/demo-keep.log")"
fi

# 4. the README's commands by hand (its own folders here), twice: the output is replaced
"$build/daemon/azflowd" --instance "demohand$$" --state-dir "$work/state" \
  --runtime-dir "$work/run" --http "" >"$work/hand.log" 2>&1 &
hand_pid=$!
export AZFLOW_ENDPOINT="ipc://$work/run/demohand$$.control"
for _ in $(seq 100); do "$build/ctl/azflowctl" stats >/dev/null 2>&1 && break; sleep 0.1; done
for n in 1 2; do
  job=$("$build/ctl/azflowctl" enqueue "$work/sample/eiger4m_master.h5" \
    --poni "$work/sample/eiger4m.poni" --npt 1000 --unit q_nm^-1 --error-model poisson \
    --overwrite -o "$work/eiger4m.h5" 2>"$work/hand-enqueue.err") ||
    fail "by hand, enqueue $n: $(cat "$work/hand-enqueue.err")"
  [[ -n "$job" ]] && { "$build/ctl/azflowctl" wait "$job" >/dev/null 2>&1 || fail "by hand, job $job ($n) did not succeed"; }
done
"$build/ctl/azflowctl" shutdown >/dev/null 2>&1 || fail "by hand: shutdown"
wait "$hand_pid" 2>/dev/null
hand_pid=

if ((failures > 0)); then
  echo "demo_test: $failures failure(s)" >&2
  exit 1
fi
echo "demo_test: ok"
