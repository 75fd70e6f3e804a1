#!/usr/bin/env bash
# A private single-node SLURM (munged + slurmctld + slurmd) on this machine, for CI and the SLURM test.
#
#   .ci/slurm.sh start    install Debian's slurm-wlm + munge if missing (root), configure, start,
#                         wait until the node is idle; a no-op when our daemons already run
#   .ci/slurm.sh stop     stop the daemons this script started (by their recorded pids), nothing else
#   .ci/slurm.sh status   exit 0 when our SLURM answers and the node is usable
#   .ci/slurm.sh env      print `export SLURM_CONF=...` (eval it before sbatch/squeue/snakemake)
#
# Everything lives in $MEDCURATE_SLURM_DIR (default /tmp/medcurate-slurm): slurm.conf, a munge key and
# socket, spool and state folders, pid and log files, and other ports than a system SLURM's
# (6917/6918). The one thing outside it: /etc/slurm/slurm.conf becomes a symlink to our slurm.conf
# (the jobstep executor drops SLURM_CONF before its nested srun, which then reads the default path);
# only where no slurm.conf exists, and `stop` removes it again. /etc/munge is not used.
# Settings that make SLURM work without an accounting database or cgroups (a container, a CI VM):
# accounting_storage/none, proctrack/linuxproc, task/none; MinJobAge=600 keeps finished jobs visible
# to `squeue`, which the snakemake executor plugin then uses for job status (no sacct).
set -euo pipefail

STATE="${MEDCURATE_SLURM_DIR:-/tmp/medcurate-slurm}"
CONF="$STATE/slurm.conf"
MUNGE="$STATE/munge"
NODE="$(hostname -s)"
SYSCONF=/etc/slurm/slurm.conf

log() { echo "slurm.sh: $*" >&2; }

install_if_needed() {
  if command -v sbatch >/dev/null && command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
     && command -v munged >/dev/null; then
    return 0
  fi
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    log "SLURM binaries are missing; install slurm-wlm and munge (Debian: apt-get install slurm-wlm munge)"
    exit 1
  fi
  log "installing slurm-wlm and munge (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
}

# A pid from a pid file, if that process is alive and is the named program started with our files.
our_pid() {  # $1 pid file, $2 program name
  local pid
  [ -s "$1" ] || return 1
  pid="$(cat "$1")"
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2" || return 1
  grep -qa -- "$STATE" "/proc/$pid/cmdline" "/proc/$pid/environ" 2>/dev/null || return 1
  echo "$pid"
}

write_config() {
  local cpus mem
  cpus="$(nproc)"
  # What slurmd detects, less 1 GiB for the daemons and the submitting snakemake.
  mem="$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')"
  mem=$(( ${mem:-4096} - 1024 ))
  mkdir -p "$STATE/ctld" "$STATE/d" "$STATE/logs"
  cat >"$CONF.tmp" <<EOF
# Written by .ci/slurm.sh: a single-node SLURM for tests (no accounting database, no cgroups).
ClusterName=medcurate
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=6917
SlurmdPort=6918
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE/munge.socket
CredType=cred/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/logs/slurmctld.log
SlurmdLogFile=$STATE/logs/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
MinJobAge=600
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=medcurate Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  mv "$CONF.tmp" "$CONF"
}

start_munge() {
  if our_pid "$MUNGE/munged.pid" munged >/dev/null; then
    return 0
  fi
  # munged refuses group/world-writable paths and runs as user munge.
  install -d -o munge -g munge -m 0755 "$MUNGE"
  if [ ! -s "$MUNGE/munge.key" ]; then
    dd if=/dev/urandom of="$MUNGE/munge.key" bs=1024 count=1 status=none
  fi
  chown munge:munge "$MUNGE/munge.key"
  chmod 0600 "$MUNGE/munge.key"
  runuser -u munge -- munged --key-file="$MUNGE/munge.key" --socket="$MUNGE/munge.socket" \
    --pid-file="$MUNGE/munged.pid" --log-file="$MUNGE/munged.log" --seed-file="$MUNGE/munged.seed"
  for _ in $(seq 50); do
    [ -S "$MUNGE/munge.socket" ] && our_pid "$MUNGE/munged.pid" munged >/dev/null && return 0
    sleep 0.1
  done
  log "munged did not start; see $MUNGE/munged.log"
  exit 1
}

link_system_conf() {
  if [ -L "$SYSCONF" ] && [ "$(readlink "$SYSCONF")" = "$CONF" ]; then
    return 0
  fi
  if [ -e "$SYSCONF" ] || [ -L "$SYSCONF" ]; then
    log "$SYSCONF exists and is not ours: this machine has its own SLURM; use it instead"
    exit 1
  fi
  mkdir -p "$(dirname "$SYSCONF")"
  ln -s "$CONF" "$SYSCONF"
}

node_ready() {
  SLURM_CONF="$CONF" timeout 10 sinfo -h -n "$NODE" -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'
}

start() {
  install_if_needed
  if our_pid "$STATE/slurmctld.pid" slurmctld >/dev/null && our_pid "$STATE/slurmd.pid" slurmd >/dev/null \
     && our_pid "$MUNGE/munged.pid" munged >/dev/null && node_ready && link_system_conf; then
    log "already running ($CONF)"
    return 0
  fi
  mkdir -p "$STATE"
  chmod 0755 "$STATE"
  start_munge
  write_config   # anew each start: the host name, cores or memory may differ from last time
  link_system_conf
  export SLURM_CONF="$CONF"
  # -c: start from a clean state (no jobs from a previous instance); daemons fork and write pid files.
  if ! our_pid "$STATE/slurmctld.pid" slurmctld >/dev/null; then
    slurmctld -c -f "$CONF"
  fi
  if ! our_pid "$STATE/slurmd.pid" slurmd >/dev/null; then
    slurmd -c -f "$CONF"
  fi
  for _ in $(seq 100); do
    if node_ready; then
      log "running: $(sinfo -h -o '%P %D %c cpus %m MB %t')"
      return 0
    fi
    sleep 0.2
  done
  # A node left DOWN/DRAINED by an earlier instance: resume it once.
  scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true
  for _ in $(seq 50); do
    node_ready && return 0
    sleep 0.2
  done
  log "SLURM did not become ready; logs:"
  tail -n 20 "$STATE"/logs/*.log "$MUNGE/munged.log" >&2 || true
  exit 1
}

stop() {
  local pid name file
  for pair in "slurmd:$STATE/slurmd.pid" "slurmctld:$STATE/slurmctld.pid" "munged:$MUNGE/munged.pid"; do
    name="${pair%%:*}"
    file="${pair#*:}"
    if pid="$(our_pid "$file" "$name")"; then
      kill "$pid"
      for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
      log "stopped $name ($pid)"
    fi
    rm -f "$file"
  done
  if [ -L "$SYSCONF" ] && [ "$(readlink "$SYSCONF")" = "$CONF" ]; then
    rm -f "$SYSCONF"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) our_pid "$STATE/slurmctld.pid" slurmctld >/dev/null && node_ready ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
