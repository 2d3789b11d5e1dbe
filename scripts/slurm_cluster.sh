#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for trying trainlab's cluster path (and for CI).
#
#   sudo scripts/slurm_cluster.sh install   # Debian/Ubuntu: slurmctld slurmd slurm-client munge
#   sudo scripts/slurm_cluster.sh start     # one node with this machine's CPUs, partition "local"
#   scripts/slurm_cluster.sh status         # sinfo
#   sudo scripts/slurm_cluster.sh stop      # stops the daemons and removes what start wrote
#
# start writes its config, state and logs under $TRAINLAB_SLURM_DIR (default /tmp/trainlab-slurm)
# and links /etc/slurm/slurm.conf to it; it refuses an /etc/slurm/slurm.conf that it did not write
# (a machine already in a cluster). Without accounting (as on many small clusters) sacct fails:
# trainlab reads job states with squeue then (see the README, "On a cluster").
set -euo pipefail

DIR=${TRAINLAB_SLURM_DIR:-/tmp/trainlab-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by trainlab scripts/slurm_cluster.sh"

need_root() {
  [ "$(id -u)" = 0 ] || { echo "slurm_cluster.sh $1: run it as root (sudo)" >&2; exit 2; }
}

ours() { [ ! -e "$CONF" ] || grep -qF "$MARK" "$CONF" 2>/dev/null; }

install() {
  need_root install
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
    return
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
}

start() {
  need_root start
  ours || { echo "slurm_cluster.sh: $CONF was not written by this script; not replacing it" >&2; exit 2; }
  if sinfo -h >/dev/null 2>&1 && [ -e "$DIR/slurm.conf" ]; then
    echo "slurm_cluster.sh: already running ($DIR)"; return
  fi
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))
  mkdir -p "$DIR"/{state,spool,log} /etc/slurm /run/munge
  cat > "$DIR/slurm.conf" <<EOF
$MARK
ClusterName=trainlab
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmdTimeout=60
KillWait=30
MinJobAge=600
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
  ln -sfn "$DIR/slurm.conf" "$CONF"
  # munge: a key of its own, the daemon as the munge user
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
  chmod 0400 /etc/munge/munge.key
  chmod 0755 /run/munge
  pgrep -x munged >/dev/null || su -s /bin/sh munge -c /usr/sbin/munged
  pgrep -x slurmctld >/dev/null || slurmctld
  pgrep -x slurmd >/dev/null || slurmd
  for _ in $(seq 1 60); do
    if sinfo -h -o %T 2>/dev/null | grep -q idle; then
      echo "slurm_cluster.sh: node $host with $cpus CPUs, partition local ($DIR)"
      return
    fi
    sleep 1
  done
  echo "slurm_cluster.sh: the node did not come up; see $DIR/log" >&2
  sinfo >&2 || true
  exit 1
}

stop() {
  need_root stop
  ours || { echo "slurm_cluster.sh: $CONF was not written by this script; not stopping" >&2; exit 2; }
  scancel --user="$(id -un)" >/dev/null 2>&1 || true
  local pids=()
  for daemon in slurmd slurmctld; do
    if [ -s "$DIR/$daemon.pid" ]; then
      pids+=("$(cat "$DIR/$daemon.pid")")
      kill "${pids[-1]}" 2>/dev/null || true
    fi
  done
  for pid in "${pids[@]}"; do  # gone before stop returns: a start right after finds none
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  done
  [ -L "$CONF" ] && rm -f "$CONF"
  rm -rf "$DIR"
  echo "slurm_cluster.sh: stopped"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) sinfo ;;
  *) echo "usage: scripts/slurm_cluster.sh install|start|stop|status" >&2; exit 2 ;;
esac
