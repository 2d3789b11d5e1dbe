#!/usr/bin/env bash
# A SLURM cluster on this machine, for trying trainlab's cluster path (and for CI).
#
#   sudo scripts/slurm_cluster.sh install            # Debian/Ubuntu: slurmctld slurmd slurm-client munge
#   sudo scripts/slurm_cluster.sh start              # one node with this machine's CPUs, partition "local"
#   sudo scripts/slurm_cluster.sh start --nodes 2    # nodes tl-node1, tl-node2 (see below)
#   scripts/slurm_cluster.sh status                  # sinfo
#   sudo scripts/slurm_cluster.sh kill-node tl-node2 # a node lost: its slurmd and job steps killed
#   sudo scripts/slurm_cluster.sh revive-node tl-node2  # its slurmd back; SLURM returns it to service
#   sudo scripts/slurm_cluster.sh stop               # stops the daemons and removes what start wrote
#
# With --nodes N (N >= 2) each node is a slurmd in a network and UTS namespace of its own: its own
# hostname (tl-nodeI) and address (10.77.0.1I on a bridge, tlbr0, whose host side 10.77.0.1 is the
# controller's), sharing this machine's file system, users and munge. Jobs and their steps run in
# their node's namespaces, so ranks on two nodes talk over the bridge as on two hosts. Each node
# offers all of this machine's CPUs (they share them). start adds the nodes' names to /etc/hosts
# (marked lines that stop removes).
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
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null &&
    command -v ip >/dev/null && command -v nsenter >/dev/null; then
    return
  fi
  apt-get update -qq
  # iproute2 and util-linux (ip, nsenter, unshare): the nodes of start --nodes N
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge \
    iproute2 util-linux >/dev/null
}

NET=10.77.0         # the nodes' bridge: the controller at .1, node I at .1I
BRIDGE=tlbr0
HOSTS_MARK="# trainlab-slurm"

node_name() { echo "tl-node$1"; }
node_addr() { echo "$NET.1$1"; }
netns_nodes() { ip netns list 2>/dev/null | grep -o '^tl-node[0-9]*' || true; }

# Node I: a network namespace named after it, linked to the bridge, and its own hostname, set in
# a new UTS namespace by the shell that then becomes its slurmd.
start_node() {
  local i=$1 name addr
  name=$(node_name "$i"); addr=$(node_addr "$i")
  if ! netns_nodes | grep -qx "$name"; then
    ip netns add "$name"
    ip link add "tlv$i" type veth peer name eth0 netns "$name"
    ip link set "tlv$i" master "$BRIDGE" up
    ip netns exec "$name" ip addr add "$addr/24" dev eth0
    ip netns exec "$name" ip link set eth0 up
    ip netns exec "$name" ip link set lo up
  fi
  mkdir -p "$DIR/spool/$name"
  # nsenter, not ip netns exec: that one remounts /sys, where slurmd needs the cgroup mounts
  nsenter --net="/run/netns/$name" unshare --uts sh -c "hostname $name && exec slurmd -N $name"
}

start() {
  need_root start
  local nodes=1
  if [ "${1:-}" = --nodes ]; then nodes=${2:-}; fi
  case "$nodes" in
    [1-9]) ;;
    *) echo "slurm_cluster.sh start: --nodes takes 1 to 9, not '$nodes'" >&2; exit 2 ;;
  esac
  ours || { echo "slurm_cluster.sh: $CONF was not written by this script; not replacing it" >&2; exit 2; }
  if sinfo -h >/dev/null 2>&1 && [ -e "$DIR/slurm.conf" ]; then
    echo "slurm_cluster.sh: already running ($DIR)"; return
  fi
  local host cpus mem ctld i node_lines=""
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 / nodes ))
  if [ "$nodes" = 1 ]; then
    ctld=$host
    node_lines="NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN"
  else
    ctld="$host($NET.1)"
    for i in $(seq 1 "$nodes"); do
      node_lines+="NodeName=$(node_name "$i") NodeAddr=$(node_addr "$i") CPUs=$cpus RealMemory=$mem State=UNKNOWN"$'\n'
    done
  fi
  mkdir -p "$DIR"/{state,spool,log} /etc/slurm /run/munge
  cat > "$DIR/slurm.conf" <<CONF
$MARK
ClusterName=trainlab
SlurmctldHost=$ctld
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
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.%n.log
SlurmdTimeout=60
KillWait=30
MinJobAge=600
$node_lines
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
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
  if [ "$nodes" = 1 ]; then
    pgrep -x slurmctld >/dev/null || slurmctld
    pgrep -x slurmd >/dev/null || slurmd
  else
    ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
    ip addr replace "$NET.1/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    [ -n "$HOSTS_MARK" ] && sed -i "/ $HOSTS_MARK\$/d" /etc/hosts
    for i in $(seq 1 "$nodes"); do
      echo "$(node_addr "$i") $(node_name "$i") $HOSTS_MARK" >> /etc/hosts
    done
    pgrep -x slurmctld >/dev/null || slurmctld
    for i in $(seq 1 "$nodes"); do start_node "$i"; done
  fi
  for _ in $(seq 1 60); do
    if [ "$(sinfo -h -N -t idle -o %N 2>/dev/null | wc -l)" -ge "$nodes" ]; then
      echo "slurm_cluster.sh: $(sinfo -h -N -o %N | paste -sd ' ') with $cpus CPUs each, partition local ($DIR)"
      return
    fi
    sleep 1
  done
  echo "slurm_cluster.sh: the nodes did not come up; see $DIR/log" >&2
  sinfo >&2 || true
  exit 1
}

# A node lost: every process in its namespace (its slurmd, the job steps and their ranks) killed
# at once, as a power cut would, and SLURM told so (it would notice by itself after SlurmdTimeout).
kill_node() {
  need_root kill-node
  local name=${1:-} pids
  netns_nodes | grep -qx "$name" || {
    echo "slurm_cluster.sh kill-node: no node '$name' (nodes: $(netns_nodes | paste -sd ' '))" >&2; exit 2; }
  pids=$(ip netns pids "$name")
  [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
  scontrol update NodeName="$name" State=DOWN Reason="lost: slurm_cluster.sh kill-node"
  echo "slurm_cluster.sh: $name lost ($(echo $pids | wc -w) processes killed)"
}

# The node back (its slurmd started again): SLURM returns it to service when it registers.
revive_node() {
  need_root revive-node
  local name=${1:-}
  netns_nodes | grep -qx "$name" || { echo "slurm_cluster.sh revive-node: no node '$name'" >&2; exit 2; }
  start_node "${name#tl-node}"
  for _ in $(seq 1 60); do
    if sinfo -h -n "$name" -o %T | grep -qE '^(idle|mixed|allocated)'; then
      echo "slurm_cluster.sh: $name back"; return
    fi
    sleep 1
  done
  echo "slurm_cluster.sh: $name did not come back; see $DIR/log" >&2
  exit 1
}

stop() {
  need_root stop
  ours || { echo "slurm_cluster.sh: $CONF was not written by this script; not stopping" >&2; exit 2; }
  scancel --user="$(id -un)" >/dev/null 2>&1 || true
  local pids=() pidfile pid name
  for pidfile in "$DIR"/slurmd*.pid "$DIR/slurmctld.pid"; do
    if [ -s "$pidfile" ]; then
      pids+=("$(cat "$pidfile")")
      kill "${pids[-1]}" 2>/dev/null || true
    fi
  done
  for pid in "${pids[@]}"; do  # gone before stop returns: a start right after finds none
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  done
  for name in $(netns_nodes); do
    pid=$(ip netns pids "$name")
    [ -z "$pid" ] || kill -9 $pid 2>/dev/null || true
    ip netns del "$name"
  done
  ! ip link show "$BRIDGE" >/dev/null 2>&1 || ip link del "$BRIDGE"
  [ -n "$HOSTS_MARK" ] && sed -i "/ $HOSTS_MARK\$/d" /etc/hosts
  [ -L "$CONF" ] && rm -f "$CONF"
  rm -rf "$DIR"
  echo "slurm_cluster.sh: stopped"
}

case "${1:-}" in
  install) install ;;
  start) shift; start "$@" ;;
  stop) stop ;;
  status) sinfo ;;
  kill-node) kill_node "${2:-}" ;;
  revive-node) revive_node "${2:-}" ;;
  *) echo "usage: scripts/slurm_cluster.sh install|start [--nodes N]|status|kill-node NODE|revive-node NODE|stop" >&2; exit 2 ;;
esac
