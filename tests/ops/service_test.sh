#!/usr/bin/env bash
# What systemd does with azflowd's exit codes: a harness reads Restart= and
# RestartPreventExitStatus= from each unit (systemd/azflowd.service.in, azflowd@.service.in) and
# decides, as systemd would, whether a failed start is restarted (Restart=on-failure restarts on
# any non-zero code not listed in RestartPreventExitStatus). Every command-line and
# configuration error of azflowd (and of azflow-stage) must exit 2 and so not be restarted.
# Also: --version of the three programs, and what azflowd started by hand says about its
# configuration file.
#   service_test.sh AZFLOWD AZFLOW_STAGE AZFLOWCTL SOURCE_DIR
set -uo pipefail
azflowd=$1 stage=$2 ctl=$3 src=$4
work=$(mktemp -d /tmp/azflow-ops-service.XXXXXX)
trap 'rm -rf "$work" "/dev/shm/azflow-lock.ops$$"' EXIT  # azflowd leaves its instance lock file
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# unit_key UNIT KEY: the value of KEY= in the unit's [Service] section (the last one wins)
unit_key() {
  sed -n '/^\[Service\]/,/^\[/p' "$1" | sed -n "s/^$2=//p" | tail -n 1
}
# would_restart UNIT CODE: 0 if systemd would restart the service after exit code CODE
would_restart() {
  local restart prevent
  restart=$(unit_key "$1" Restart)
  prevent=$(unit_key "$1" RestartPreventExitStatus)
  [[ "$2" -eq 0 ]] && return 1
  for p in $prevent; do [[ "$p" == "$2" ]] && return 1; done
  [[ "$restart" == on-failure || "$restart" == always ]]
}

cat > "$work/bad-key.toml" <<'TOML'
workerz = 2
TOML
cat > "$work/bad-value.toml" <<'TOML'
shard_frames = 0
TOML
cat > "$work/bad-syntax.toml" <<'TOML'
workers = = 2
TOML
# "name|command line" of azflowd that must exit 2
cases=(
  "missing config file|--config $work/nonexistent.toml"
  "--workers two|--workers two"
  "unknown option|--no-such-option"
  "unknown config key|--config $work/bad-key.toml"
  "invalid config value|--config $work/bad-value.toml"
  "TOML syntax error|--config $work/bad-syntax.toml"
  "bad log level|--log-level loud"
  "bad instance name|--instance bad/name"
  "bad node name|--node bad/name --peer-endpoint tcp://127.0.0.1:0"
  "keygen without --state-dir|keygen"
)
for unit in "$src/systemd/azflowd.service.in" "$src/systemd/azflowd@.service.in"; do
  [[ -n "$(unit_key "$unit" RestartPreventExitStatus)" ]] ||
    fail "$(basename "$unit"): no RestartPreventExitStatus"
done
for c in "${cases[@]}"; do
  name=${c%%|*} args=${c#*|}
  dirs=(--state-dir "$work/state" --runtime-dir "$work/run")
  [[ "$args" == keygen* ]] && dirs=()
  # shellcheck disable=SC2086
  timeout 20 "$azflowd" $args "${dirs[@]}" >"$work/out" 2>"$work/err"
  rc=$?
  before=$failures
  [[ $rc -eq 2 ]] || fail "azflowd $name ($args): exit $rc, expected 2: $(head -c 300 "$work/err")"
  [[ -s "$work/err" ]] || fail "azflowd $name: no message on stderr"
  for unit in "$src/systemd/azflowd.service.in" "$src/systemd/azflowd@.service.in"; do
    if would_restart "$unit" "$rc"; then
      fail "$(basename "$unit") would restart azflowd after '$name' (exit $rc) forever"
    fi
  done
  ((failures == before)) && echo "ok: azflowd $name: exit $rc, not restarted: $(head -n 1 "$work/err")"
done
# the harness itself: a crash-like exit (1) is restarted, a clean stop (0) is not
would_restart "$src/systemd/azflowd.service.in" 1 || fail "harness: exit 1 not restarted"
! would_restart "$src/systemd/azflowd.service.in" 0 || fail "harness: exit 0 restarted"

for c in "unknown option|--no-such-option" "missing --role|--instance x --endpoint ipc:///x" \
  "bad worker index|--role source --instance x --endpoint ipc:///x --worker minus" \
  "bad device|--role integrate --instance x --endpoint ipc:///x --device gpu"; do
  name=${c%%|*} args=${c#*|}
  # shellcheck disable=SC2086
  timeout 20 "$stage" $args >/dev/null 2>&1
  rc=$?
  [[ $rc -eq 2 ]] || fail "azflow-stage $name: exit $rc, expected 2"
  echo "ok: azflow-stage $name: exit $rc"
done

version=$(sed -n 's/^project(azflow VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
for p in "azflowd|$azflowd" "azflowctl|$ctl" "azflow-stage|$stage"; do
  out=$("${p#*|}" --version 2>&1)
  rc=$?
  [[ $rc -eq 0 && "$out" == "${p%%|*} $version" ]] ||
    fail "${p%%|*} --version: exit $rc, '$out' (expected '${p%%|*} $version')"
  echo "ok: $out"
done

# azflowd by hand: says which configuration file it read, or that it read none
echo "workers = 1" > "$work/good.toml"
for with in none file; do
  config=()
  [[ $with == file ]] && config=(--config "$work/good.toml")
  timeout -s INT 5 "$azflowd" "${config[@]}" --instance "ops$$" --workers 1 \
    --state-dir "$work/state-$with" --runtime-dir "$work/run-$with" >/dev/null 2>"$work/log-$with"
  if [[ $with == file ]]; then
    grep -q "configuration: read $work/good.toml" "$work/log-$with" ||
      fail "azflowd --config: no 'configuration: read FILE' line: $(head -n 3 "$work/log-$with")"
  else
    grep -q "configuration: no file read" "$work/log-$with" ||
      fail "azflowd without --config: no 'no file read' line: $(head -n 3 "$work/log-$with")"
  fi
  echo "ok: azflowd, config $with: $(grep -m1 'configuration:' "$work/log-$with")"
done

if ((failures > 0)); then
  echo "service_test: $failures failures" >&2
  exit 1
fi
echo "service_test: PASS"
