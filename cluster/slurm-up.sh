#!/usr/bin/env bash
# Start a real single-node SLURM on this machine (munged, slurmctld, slurmd), for the tests of
# profiles/slurm. Idempotent: a second run finds the daemons alive by their recorded PIDs and the
# configuration unchanged, checks that the node is idle and changes nothing.
#
# The node gets CURATE_SLURM_GPUS (default 2) fake GPUs (null devices listed in gres.conf), so
# that jobs asking for GPUs are scheduled and see CUDA_VISIBLE_DEVICES, and one default partition
# CURATE_SLURM_PARTITION_NAME (default "main"). No accounting (no slurmdbd): query jobs with
# squeue. PIDs and a copy of the configuration go to CURATE_SLURM_STATE (default /run/curate-slurm);
# cluster/slurm-down.sh stops the daemons by those PIDs.
#
# Exit status: 0 ready; 2 the packages are missing and cannot be installed (or we are not root);
# 1 anything else (the message says what).
set -euo pipefail

STATE_DIR=${CURATE_SLURM_STATE:-/run/curate-slurm}
N_GPUS=${CURATE_SLURM_GPUS:-2}
PARTITION=${CURATE_SLURM_PARTITION_NAME:-main}
GPU_TYPE=fake
CONF_DIR=/etc/slurm
NODE=$(hostname -s)
PACKAGES=(slurm-wlm munge slurm-client)

say() { echo "slurm-up: $*"; }
die() { echo "slurm-up: ERROR: $1" >&2; exit "${2:-1}"; }  # die MESSAGE [STATUS]

# ---------------------------------------------------------------------------- packages
[ "$(id -u)" = 0 ] || die "must run as root (installs packages, writes /etc/slurm, starts daemons)" 2

missing_binaries() {
  local b
  for b in slurmctld slurmd sbatch squeue sinfo scontrol srun munged munge unmunge mungekey; do
    command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || echo "$b"
  done
}
if [ -n "$(missing_binaries)" ]; then
  say "installing ${PACKAGES[*]} (missing: $(missing_binaries | tr '\n' ' '))"
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: cannot install ${PACKAGES[*]}" 2
  export DEBIAN_FRONTEND=noninteractive
  apt_log=$(mktemp)
  if ! { apt-get update && apt-get install -y --no-install-recommends "${PACKAGES[@]}"; } >"$apt_log" 2>&1; then
    tail -n 15 "$apt_log" >&2
    rm -f "$apt_log"
    die "cannot install ${PACKAGES[*]} with apt-get (see the lines above)" 2
  fi
  rm -f "$apt_log"
  [ -z "$(missing_binaries)" ] || die "installed ${PACKAGES[*]} but still missing: $(missing_binaries | tr '\n' ' ')" 2
fi
export PATH="$PATH:/usr/sbin:/sbin"
id munge >/dev/null 2>&1 || die "no 'munge' user after installing munge"
id slurm >/dev/null 2>&1 || die "no 'slurm' user after installing slurm-wlm"

mkdir -p "$STATE_DIR"

# ---------------------------------------------------------------------------- PIDs
# A recorded PID counts only while it is alive and still the named program (PIDs get reused).
alive() {  # alive NAME -> prints the PID and succeeds if NAME's recorded process runs
  local name=$1 pid
  [ -s "$STATE_DIR/$name.pid" ] || return 1
  pid=$(cat "$STATE_DIR/$name.pid")
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$name" ] || return 1
  echo "$pid"
}

stop() {  # stop NAME: SIGTERM the recorded PID, wait, SIGKILL if it lingers
  local name=$1 pid
  if pid=$(alive "$name"); then
    say "stopping $name (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do [ -d "/proc/$pid" ] || break; sleep 0.2; done
    [ -d "/proc/$pid" ] && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$STATE_DIR/$name.pid"
}

record() {  # record NAME PIDFILE: wait for the daemon's own pid file, copy its PID to the state dir
  local name=$1 pidfile=$2 pid
  for _ in $(seq 1 100); do
    if [ -s "$pidfile" ]; then
      pid=$(tr -dc '0-9' <"$pidfile")
      if [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$name" ]; then
        echo "$pid" >"$STATE_DIR/$name.pid"
        say "$name running (pid $pid)"
        return 0
      fi
    fi
    sleep 0.1
  done
  return 1
}

foreign() {  # foreign NAME: a lasting NAME process that is neither ours nor a child of ours
  local mine pid ppid
  mine=$(alive "$1" || true)
  for pid in $(pgrep -x "$1" || true); do
    [ "$pid" = "$mine" ] && continue
    ppid=$(ps -o ppid= -p "$pid" 2>/dev/null | tr -d ' ')
    [ -n "$mine" ] && [ "$ppid" = "$mine" ] && continue
    sleep 1  # daemons fork short-lived helpers of their own name
    [ -d "/proc/$pid" ] && { echo "$pid"; return 0; }
  done
  return 1
}

for name in munged slurmctld slurmd; do
  if pid=$(foreign "$name"); then
    die "a $name not started by this script is running (pid $pid); stop it first (this script only stops what it started)"
  fi
done

# ---------------------------------------------------------------------------- munge
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
if [ ! -s /etc/munge/munge.key ]; then
  say "creating /etc/munge/munge.key"
  mungekey --create --keyfile=/etc/munge/munge.key
fi
chown munge:munge /etc/munge/munge.key
chmod 600 /etc/munge/munge.key

if ! alive munged >/dev/null; then
  rm -f /run/munge/munged.pid
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid \
    || die "munged did not start"
  record munged /run/munge/munged.pid || die "munged started but wrote no pid file"
fi
munge -n | unmunge >/dev/null || die "munge credentials do not round-trip (munge -n | unmunge)"

# ---------------------------------------------------------------------------- configuration
install -d -o slurm -g slurm -m 0755 /var/lib/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd \
  /var/log/slurm /run/slurm
install -d -m 0755 "$CONF_DIR"

# The node as slurmd sees it; RealMemory at 85 % of what it reports (the full value drains it).
hw=$(slurmd -C | head -n 1)
field() { echo "$hw" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
CPUS=$(field CPUs); BOARDS=$(field Boards); SOCKETS=$(field SocketsPerBoard)
CORES=$(field CoresPerSocket); THREADS=$(field ThreadsPerCore); MEM=$(field RealMemory)
[ -n "$CPUS" ] && [ -n "$MEM" ] || die "cannot read the node's CPUs and memory from 'slurmd -C': $hw"
REAL_MEM=$((MEM * 85 / 100))

for i in $(seq 0 $((N_GPUS - 1))); do
  dev=/dev/fakegpu$i
  if [ ! -e "$dev" ]; then
    mknod "$dev" c 1 3 2>/dev/null || touch "$dev"  # a null device; a plain file where mknod is denied
  fi
done

new_conf=$(mktemp); new_gres=$(mktemp)
trap 'rm -f "$new_conf" "$new_gres"' EXIT
cat >"$new_conf" <<EOF
# Written by cluster/slurm-up.sh: a single-node SLURM for the tests of profiles/slurm.
ClusterName=curate
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups here (slurmd 22.05 dies on CgroupPlugin=disabled, so no cgroup.conf either)
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# finished jobs stay visible to squeue for 5 minutes: the executor plugin's squeue status
# query needs MinJobAge >= 3 x its first status poll
MinJobAge=300
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS Boards=$BOARDS SocketsPerBoard=$SOCKETS CoresPerSocket=$CORES ThreadsPerCore=$THREADS RealMemory=$REAL_MEM Gres=gpu:$GPU_TYPE:$N_GPUS State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
echo "Name=gpu Type=$GPU_TYPE File=/dev/fakegpu[0-$((N_GPUS - 1))]" >"$new_gres"
[ "$N_GPUS" -gt 1 ] || echo "Name=gpu Type=$GPU_TYPE File=/dev/fakegpu0" >"$new_gres"

changed=0
if ! cmp -s "$new_conf" "$CONF_DIR/slurm.conf"; then install -m 0644 "$new_conf" "$CONF_DIR/slurm.conf"; changed=1; fi
if ! cmp -s "$new_gres" "$CONF_DIR/gres.conf"; then install -m 0644 "$new_gres" "$CONF_DIR/gres.conf"; changed=1; fi
if [ -e "$CONF_DIR/cgroup.conf" ]; then
  say "moving $CONF_DIR/cgroup.conf aside (slurmd 22.05 dies on it without cgroups)"
  mv "$CONF_DIR/cgroup.conf" "$CONF_DIR/cgroup.conf.disabled-by-slurm-up"
  changed=1
fi
cp "$CONF_DIR/slurm.conf" "$CONF_DIR/gres.conf" "$STATE_DIR/"
if [ "$changed" = 1 ]; then
  say "configuration written ($CONF_DIR/slurm.conf: $CPUS CPUs, RealMemory=$REAL_MEM MB, $N_GPUS fake GPUs, partition $PARTITION)"
  # scontrol reconfigure is not enough for every change: restart what runs
  stop slurmd
  stop slurmctld
fi

# ---------------------------------------------------------------------------- daemons
if ! alive slurmctld >/dev/null; then
  rm -f /run/slurm/slurmctld.pid
  /usr/sbin/slurmctld || die "slurmctld did not start; see /var/log/slurm/slurmctld.log"
  record slurmctld /run/slurm/slurmctld.pid || die "slurmctld exited; see /var/log/slurm/slurmctld.log: $(tail -n 5 /var/log/slurm/slurmctld.log 2>/dev/null)"
fi
for _ in $(seq 1 50); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.2; done
scontrol ping 2>/dev/null | grep -q UP || die "slurmctld does not answer 'scontrol ping'; see /var/log/slurm/slurmctld.log"

if ! alive slurmd >/dev/null; then
  rm -f /run/slurm/slurmd.pid
  /usr/sbin/slurmd || die "slurmd did not start; see /var/log/slurm/slurmd.log"
  record slurmd /run/slurm/slurmd.pid || die "slurmd exited; see /var/log/slurm/slurmd.log: $(tail -n 5 /var/log/slurm/slurmd.log 2>/dev/null)"
fi

# ---------------------------------------------------------------------------- node ready
state=""
for _ in $(seq 1 120); do
  state=$(sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n 1)
  case "$state" in
    idle|mixed|allocated|completing) break ;;
    drain*|down*|fail*)
      say "node $NODE is $state: resuming it"
      scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;;
  esac
  sleep 0.5
done
case "$state" in
  idle|mixed|allocated|completing) ;;
  *) die "node $NODE is '${state:-unknown}' after 60 s; reason: $(sinfo -h -N -n "$NODE" -o '%E' 2>/dev/null); see /var/log/slurm/slurmd.log" ;;
esac
gres=$(sinfo -h -N -n "$NODE" -o '%G' | head -n 1)
say "ready: node $NODE $state, partition $PARTITION (default), gres $gres, state in $STATE_DIR"
