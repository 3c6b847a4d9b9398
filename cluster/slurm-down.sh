#!/usr/bin/env bash
# Stop the single-node SLURM that cluster/slurm-up.sh started: slurmd, slurmctld, munged, each by
# the PID slurm-up.sh recorded (and only if that PID is still the same program). Safe to run
# twice, or when nothing runs. Leaves the packages, the configuration and the munge key in place.
set -uo pipefail

STATE_DIR=${CURATE_SLURM_STATE:-/run/curate-slurm}

say() { echo "slurm-down: $*"; }

stop() {
  local name=$1 pid
  [ -s "$STATE_DIR/$name.pid" ] || { say "$name: not started by slurm-up.sh (no recorded PID)"; return 0; }
  pid=$(cat "$STATE_DIR/$name.pid")
  if [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$name" ]; then
    say "stopping $name (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do [ -d "/proc/$pid" ] || break; sleep 0.2; done
    if [ -d "/proc/$pid" ]; then
      say "$name (pid $pid) still alive after 10 s: SIGKILL"
      kill -9 "$pid" 2>/dev/null || true
    fi
  else
    say "$name: recorded pid $pid is gone already"
  fi
  rm -f "$STATE_DIR/$name.pid"
}

stop slurmd
stop slurmctld
stop munged
exit 0
