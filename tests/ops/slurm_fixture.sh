#!/usr/bin/env bash
# ctest fixture of the SLURM tests: scripts/slurm-local up (setup) or down (cleanup). Exit 77
# (skipped) when not root or SLURM/munge are not installed (scripts/setup installs them).
set -euo pipefail
src=$1 action=$2
if [[ $(id -u) -ne 0 ]] || ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  echo "slurm_fixture: needs root, slurmctld, slurmd and munged (scripts/setup): skipped"
  exit 77
fi
exec bash "$src/scripts/slurm-local" "$action"
