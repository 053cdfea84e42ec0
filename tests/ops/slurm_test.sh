#!/usr/bin/env bash
# azflow under a real SLURM cluster (scripts/slurm-local: two slurmd node names on this host),
# with the binaries as `cmake --install` puts them:
#  1. split mode: `sbatch --wait -N 2` of examples/slurm/azflowd-federation.sbatch on a 100-frame
#     EIGER 4M bitshuffle-LZ4 series: the job succeeds, both SLURM nodes integrated shards (the
#     job's events.log), the output matches pyFAI (check_pyfai.py), no azflowd or azflow-stage of
#     the job is left, nor its shared memory;
#  2. the same example cancelled with scancel mid-job: nothing of it is left running;
#  3. bulk mode: examples/slurm/azflow-bulk.sbatch as a 3-task array over three datasets, and
#     azflow-bulk-summary.sbatch after it with --dependency=afterok: every output exists and
#     matches pyFAI.
#   slurm_test.sh BUILD_DIR SOURCE_DIR      (exit 77: skipped, not root or no SLURM)
set -euo pipefail
build=$1 src=$2
tools="$src/../shared/tools"
if [[ $(id -u) -ne 0 ]] || ! command -v sbatch >/dev/null; then
  echo "slurm_test: needs root and SLURM (scripts/setup): skipped"
  exit 77
fi
if [[ ! -f "$tools/gen_dataset.py" ]]; then
  echo "slurm_test: no $tools/gen_dataset.py: skipped"
  exit 77
fi
eval "$(bash "$src/scripts/slurm-local" env)"
work=$(mktemp -d /tmp/azflow-ops-slurm.XXXXXX)
jobs_submitted=()
cleanup() {
  for j in "${jobs_submitted[@]}"; do scancel "$j" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "slurm_test: FAIL: $*" >&2
  exit 1
}
py=/usr/bin/python3

prefix="$work/prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null
export PATH="$prefix/bin:$PATH"

# datasets: kept between runs (the generator is deterministic for a seed)
data=${AZFLOW_OPS_DATA:-/tmp/azflow-ops-data}
mkdir -p "$data"
if [[ ! -f "$data/split_master.h5" ]]; then
  $py "$tools/gen_dataset.py" --out-dir "$data" --name split --frames 100 --detector Eiger4M \
    --dtype uint32 --compression bslz4 --seed 15 --quiet --overwrite
fi
for i in 1 2 3; do
  if [[ ! -f "$data/bulk$i""_master.h5" ]]; then
    $py "$tools/gen_dataset.py" --out-dir "$data" --name "bulk$i" --frames 5 --detector Eiger4M \
      --dtype uint32 --compression bslz4 --seed "$i" --quiet --overwrite
  fi
done

# small pipelines for a 2-core machine; shard_frames stays 50 (the default): the coordinator
# sizes the shards of a split job for both nodes (2 x 4 slots: 8 shards of 13 frames)
cat > "$work/azflowd.toml" <<TOML
workers = 1
integrate_workers = 1
stop_timeout_s = 5
[rings]
compressed_slots = 4
frames_slots = 4
TOML
export AZFLOWD_CONFIG="$work/azflowd.toml"
sbatch_dir="$src/examples/slurm"

# leftovers JOBID: processes and shared memory of the job's daemons (instances j<JOBID>-<node>)
leftovers() {
  pgrep -af -- "--instance j$1-" || true
  ls /dev/shm | grep -E "^azflow(-lock)?\.j$1-" || true
}
wait_gone() {
  for _ in $(seq 60); do
    [[ -z "$(leftovers "$1")" ]] && return 0
    sleep 0.5
  done
  fail "job $1 left: $(leftovers "$1")"
}

echo "== 1. split mode: azflowd-federation.sbatch -N 2, 100 frames"
export AZFLOW_SHARED="$work/fed-shared"
out="$work/split.h5"
jid=$(sbatch --parsable -N 2 -o "$work/fed-%j.out" "$sbatch_dir/azflowd-federation.sbatch" \
  "$data/split_master.h5" "$data/split.poni" -o "$out" --npt 1000 --unit q_nm^-1)
jobs_submitted+=("$jid")
for _ in $(seq 240); do
  squeue -h -j "$jid" 2>/dev/null | grep -q . || break
  sleep 0.5
done
cat "$work/fed-$jid.out"
state=$(scontrol show job "$jid" | sed -n 's/.*JobState=\([A-Z]*\).*/\1/p')
exit_code=$(scontrol show job "$jid" | sed -n 's/.* ExitCode=\([0-9:]*\).*/\1/p')
[[ "$state" == COMPLETED && "$exit_code" == 0:0 ]] || fail "job $jid: $state, exit $exit_code"
events=$(ls "$AZFLOW_SHARED"/job-*.events.log)
cat "$events"
nodes=($(scontrol show hostnames "$(scontrol show job "$jid" | sed -n 's/^ *NodeList=\(.*\)/\1/p')"))
[[ ${#nodes[@]} -eq 2 ]] || fail "job $jid ran on ${nodes[*]}"
coordinator=${nodes[0]} peer=${nodes[1]}
to_peer=$(grep -cE "shard [0-9]+ to $peer\$" "$events" || true)
done_total=$(grep -cE "shard [0-9]+ done frames=[0-9]+ failed=0" "$events" || true)
frames_done=$(grep -oE "done frames=[0-9]+" "$events" | awk -F= '{s += $2} END {print s}')
[[ "$frames_done" -eq 100 && "$done_total" -ge 2 ]] ||
  fail "$frames_done of 100 frames done in $done_total shards"
[[ "$to_peer" -ge 1 ]] || fail "the peer $peer integrated no shard"
# shards never handed to the peer were integrated by the coordinator
local_shards=$(comm -23 <(grep -oE "shard [0-9]+ done" "$events" | awk '{print $2}' | sort -u) \
  <(grep -oE "shard [0-9]+ to $peer" "$events" | awk '{print $2}' | sort -u) | wc -l)
[[ "$local_shards" -ge 1 ]] || fail "the coordinator $coordinator integrated no shard"
echo "shards: $local_shards on $coordinator, $to_peer handed to $peer"
grep -q "job succeeded" "$events" || fail "no 'job succeeded' in $events"
$py "$src/tests/ops/check_pyfai.py" "$data/split_master.h5" "$data/split.poni" "$out" \
  --npt 1000 --unit q_nm^-1 --frames 0,37,99 || fail "output differs from pyFAI"
wait_gone "$jid"

echo "== 2. scancel mid-job"
export AZFLOW_SHARED="$work/cancel-shared"
# azflow-stage's test hook slows every frame by 200 ms: the job is still running when cancelled
jid=$(AZFLOW_TEST_DELAY_MS_INTEGRATE=200 sbatch --parsable -N 2 -o "$work/cancel-%j.out" \
  "$sbatch_dir/azflowd-federation.sbatch" "$data/split_master.h5" "$data/split.poni" \
  -o "$work/cancel.h5" --npt 1000 --unit q_nm^-1)
jobs_submitted+=("$jid")
for _ in $(seq 240); do
  grep -q "azflowd-federation: job" "$work/cancel-$jid.out" 2>/dev/null && break
  sleep 0.25
done
grep -q "azflowd-federation: job" "$work/cancel-$jid.out" || fail "job $jid never enqueued"
running=$(pgrep -fc -- "--instance j$jid-" || true)
echo "cancelling job $jid with $running azflow processes running"
[[ "$running" -ge 2 ]] || fail "job $jid: daemons not running before scancel"
scancel "$jid"
for _ in $(seq 240); do
  squeue -h -j "$jid" 2>/dev/null | grep -q . || break
  sleep 0.5
done
cat "$work/cancel-$jid.out"
state=$(scontrol show job "$jid" | sed -n 's/.*JobState=\([A-Z]*\).*/\1/p')
[[ "$state" == CANCELLED ]] || fail "job $jid: $state after scancel"
wait_gone "$jid"

echo "== 3. bulk mode: a 3-task array and an afterok follower"
ls "$data"/bulk?_master.h5 > "$work/bulk.list"
jid=$(sbatch --parsable --array=0-2 -o "$work/bulk-%A_%a.out" "$sbatch_dir/azflow-bulk.sbatch" \
  "$work/bulk.list" "$data/bulk1.poni" "$work/bulk-out" --npt 1000 --unit q_nm^-1)
jobs_submitted+=("$jid")
sid=$(sbatch --parsable --dependency=afterok:"$jid" -o "$work/summary-%j.out" \
  "$sbatch_dir/azflow-bulk-summary.sbatch" "$work/bulk.list" "$work/bulk-out")
jobs_submitted+=("$sid")
for _ in $(seq 360); do
  squeue -h -j "$jid,$sid" 2>/dev/null | grep -q . || break
  sleep 0.5
done
cat "$work"/bulk-*.out "$work"/summary-*.out
state=$(scontrol show job "$sid" | sed -n 's/.*JobState=\([A-Z]*\).*/\1/p')
[[ "$state" == COMPLETED ]] || fail "summary job $sid: $state"
[[ $(wc -l < "$work/bulk-out/summary.txt") -eq 3 ]] || fail "summary.txt: $(cat "$work/bulk-out/summary.txt")"
for i in 1 2 3; do
  $py "$src/tests/ops/check_pyfai.py" "$data/bulk${i}_master.h5" "$data/bulk$i.poni" \
    "$work/bulk-out/bulk$i.h5" --npt 1000 --unit q_nm^-1 --frames 0,4 || fail "bulk$i differs from pyFAI"
done
echo "slurm_test: PASS"
