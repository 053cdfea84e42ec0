#!/usr/bin/env bash
# azflowctl as a user meets it:
#  1. socket discovery as a non-root user: a daemon started as root with the system service's
#     runtime folder (/run/azflow, socket group azflow with mode 0770 as the units' UMask gives)
#     is found by `azflowctl --instance NAME status` run as a member of group azflow, without
#     --endpoint or AZFLOW_ENDPOINT (the user azflow-ops-test and the group are created if
#     missing: CI runs as root); without a daemon the error lists every endpoint tried;
#  2. drain refuses enqueue and undrain accepts it again;
#  3. pyFAI spellings: --npt_rad is answered with "did you mean --npt-rad?", exit 2; sweep keys
#     are spelled as options (npt-rad) and the '_' spelling is accepted too.
#   ctl_test.sh AZFLOWD AZFLOW_STAGE AZFLOWCTL       (exit 77: skipped, not root)
set -uo pipefail
azflowd=$1 ctl=$3
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}
instance="opsctl$$"
work=$(mktemp -d /tmp/azflow-ops-ctl.XXXXXX)
chmod 0755 "$work"
daemon_pid=
cleanup() {
  [[ -n "$daemon_pid" ]] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  rm -f "/run/azflow/$instance.control" "/run/azflow/$instance.live" "/run/azflow/$instance.stages"
  rm -f "/dev/shm/azflow-lock.$instance"  # azflowd leaves its instance lock file in place
  rm -rf "$work"
}
trap cleanup EXIT

# 2. suggestions (any user)
out=$("$ctl" enqueue "$work/x_master.h5" --poni "$work/x.poni" --npt_rad 100 2>&1)
rc=$?
[[ $rc -eq 2 && "$out" == *"did you mean --npt-rad?"* ]] || fail "--npt_rad: exit $rc: $out"
echo "ok: --npt_rad: $out"
out=$("$ctl" enqueue "$work/x_master.h5" --poni "$work/x.poni" --error_model poisson 2>&1)
[[ "$out" == *"did you mean --error-model?"* ]] || fail "--error_model: $out"
out=$("$ctl" enqueue "$work/x_master.h5" --poni "$work/x.poni" --polarization 0.9 2>&1)
[[ "$out" == *"did you mean --polarization-factor?"* ]] || fail "--polarization: $out"
out=$("$ctl" --help 2>&1)
[[ "$out" == *"--instance"* ]] || fail "azflowctl --help does not show --instance"

if [[ $(id -u) -ne 0 ]]; then
  echo "ctl_test: discovery as a non-root user needs root to set up: skipped"
  ((failures == 0)) && exit 77
  exit 1
fi
user=azflow-ops-test
getent group azflow >/dev/null || groupadd --system azflow
getent passwd "$user" >/dev/null || useradd --no-create-home --shell /usr/sbin/nologin "$user"
id -nG "$user" | tr ' ' '\n' | grep -qx azflow || usermod -aG azflow "$user"
as_user() { runuser -u "$user" -- env -u AZFLOW_ENDPOINT -u XDG_RUNTIME_DIR HOME=/nonexistent "$@"; }

# no daemon yet: the error names every endpoint tried
out=$(as_user "$ctl" --timeout 1 --instance "$instance" status 2>&1)
rc=$?
[[ $rc -eq 1 ]] || fail "no daemon: exit $rc"
for e in "/tmp/azflow-$(id -u "$user")/$instance.control" "/run/azflow/$instance.control" \
  "/run/azflow-$instance/$instance.control"; do
  [[ "$out" == *"$e"* ]] || fail "no daemon: '$e' not among the endpoints tried: $out"
done
echo "ok: no daemon: $out"

mkdir -p /run/azflow
# as systemd makes it for the units (RuntimeDirectoryMode=0750, Group=azflow): azflowd takes the
# permissions of others off its runtime folder, so the group is what lets members in
chgrp azflow /run/azflow
chmod 0750 /run/azflow
"$azflowd" --instance "$instance" --runtime-dir /run/azflow --state-dir "$work/state" \
  --workers 1 2>"$work/azflowd.log" &
daemon_pid=$!
for _ in $(seq 100); do
  [[ -S "/run/azflow/$instance.control" ]] && break
  sleep 0.1
done
[[ -S "/run/azflow/$instance.control" ]] || fail "azflowd made no socket: $(tail -n 5 "$work/azflowd.log")"
# what the units' Group=azflow and UMask=0002 give
chgrp azflow "/run/azflow/$instance.control"
chmod 0770 "/run/azflow/$instance.control"
out=$(as_user "$ctl" --instance "$instance" status 2>&1)
rc=$?
[[ $rc -eq 0 && "$out" == *"at ipc:///run/azflow/$instance.control"* ]] ||
  fail "non-root status: exit $rc: $out"
[[ "$out" == *"instance $instance"* ]] || fail "status does not name the instance: $out"
[[ "$out" != *"{"* && "$out" != *"uptime_s"* ]] || fail "status prints raw JSON: $out"
echo "ok: $user found the daemon:"
echo "$out"
# sweep keys: listed as the options are spelled; both spellings accepted
printf 'poni_version: 2\nDetector: Eiger4M\nDistance: 0.1\nPoni1: 0.04\nPoni2: 0.04\nRot1: 0\nRot2: 0\nRot3: 0\nWavelength: 1e-10\n' > "$work/x.poni"
touch "$work/x_master.h5"
out=$("$ctl" --instance "$instance" enqueue "$work/x_master.h5" --poni "$work/x.poni" \
  --output-dir "$work/out" --sweep bogus=1 2>&1)
[[ "$out" == *"npt-rad"* && "$out" == *"error-model"* ]] || fail "sweep keys not spelled as options: $out"
echo "ok: sweep keys: $out"
for key in npt-rad npt_rad; do
  out=$("$ctl" --instance "$instance" enqueue "$work/x_master.h5" --poni "$work/x.poni" \
    --output-dir "$work/out" --sweep "$key=100,200" 2>&1)
  [[ "$out" != *"unknown key"* ]] || fail "--sweep $key refused: $out"
done
# drain refuses enqueue, undrain accepts it again
c=("$ctl" --instance "$instance")
"${c[@]}" drain >/dev/null || fail "drain failed"
out=$("${c[@]}" enqueue "$work/x_master.h5" --poni "$work/x.poni" -o "$work/d.h5" 2>&1)
rc=$?
[[ $rc -eq 2 && "$out" == *draining* ]] || fail "enqueue while draining: exit $rc: $out"
out=$("${c[@]}" undrain 2>&1)
[[ $? -eq 0 && "$out" == *"accepts jobs again"* ]] || fail "undrain: $out"
[[ "$("${c[@]}" --json stats)" == *'"draining": false'* ]] || fail "still draining after undrain"
out=$("${c[@]}" enqueue "$work/x_master.h5" --poni "$work/x.poni" -o "$work/d.h5" 2>&1)
[[ "$out" != *draining* ]] || fail "enqueue after undrain: $out"
echo "ok: drain refuses enqueue, undrain: $("${c[@]}" undrain)"
# a user outside the group cannot connect, and is told where it looked
gpasswd -d "$user" azflow >/dev/null
out=$(as_user "$ctl" --timeout 1 --instance "$instance" status 2>&1)
rc=$?
usermod -aG azflow "$user"
[[ $rc -ne 0 ]] || fail "a user outside group azflow reached the daemon"
echo "ok: outside the group: exit $rc"

if ((failures > 0)); then
  echo "ctl_test: $failures failures" >&2
  exit 1
fi
echo "ctl_test: PASS"
