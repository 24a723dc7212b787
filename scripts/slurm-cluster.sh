#!/usr/bin/env bash
# A throwaway one-node Slurm cluster on this machine, for the tests of hrtem's Slurm path.
#
#   scripts/slurm-cluster.sh start DIR   installs Debian's slurm-wlm and munge when missing, makes a
#                                        munge key, writes DIR/slurm.conf (this host, its real CPUs
#                                        and memory), starts munged, slurmctld and slurmd with all
#                                        their state in DIR, waits until the node is idle, and
#                                        prints SLURM_CONF=DIR/slurm.conf (what clients need)
#   scripts/slurm-cluster.sh stop DIR    stops the daemons that `start DIR` started (by their pids)
#
# Nothing outside DIR is configured: munged listens on DIR/munge/socket, the daemons on two free
# ports, so a cluster the machine may already run is left alone. The settings avoid cgroups and
# accounting so that it also works in a container (proctrack/linuxproc, task/none, no slurmdbd).
#
# Exit status 77: this machine cannot run the cluster (not root and no password-less sudo, no
# apt-get, packages that cannot be installed); the reason is the last line on stderr. Any other
# failure is an error, with the daemons' logs.
set -euo pipefail

cannot() { echo "slurm-cluster: cannot run a Slurm cluster here: $*" >&2; exit 77; }
fail() { echo "slurm-cluster: $*" >&2; exit 1; }

[ $# -eq 2 ] || { echo "usage: $0 start|stop DIR" >&2; exit 64; }
action=$1
mkdir -p "$2"
dir=$(cd "$2" && pwd)

if [ "$(id -u)" = 0 ]; then SUDO=""
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"
else SUDO=none
fi

stop() {
  local name pid
  for name in slurmd slurmctld munged; do
    [ -f "$dir/run/$name.pid" ] || continue
    pid=$(cat "$dir/run/$name.pid")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      $SUDO kill "$pid" 2>/dev/null || true
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && { $SUDO kill -9 "$pid" 2>/dev/null || true; }
    fi
    rm -f "$dir/run/$name.pid"
  done
}

if [ "$action" = stop ]; then
  [ "$SUDO" = none ] && SUDO=""
  stop
  exit 0
fi
[ "$action" = start ] || { echo "usage: $0 start|stop DIR" >&2; exit 64; }

[ "$(uname -s)" = Linux ] || cannot "Slurm's daemons need Linux, this is $(uname -s)"
[ "$SUDO" = none ] && cannot "the daemons (slurmd launches the jobs) need root or password-less sudo, and $(id -un) has neither"

# Debian's packages, when missing (apt-get update only when something is missing, as `make deps`).
missing=""
for pair in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge; do
  command -v "${pair%%:*}" >/dev/null || [ -x "/usr/sbin/${pair%%:*}" ] || missing="$missing ${pair#*:}"
done
if [ -n "$missing" ]; then
  command -v apt-get >/dev/null || cannot "Slurm is not installed ($missing) and there is no apt-get to install it"
  echo "slurm-cluster: installing slurm-wlm and munge (missing:$missing)" >&2
  # The packages' scripts would start system-wide daemons (unconfigured; ours run from DIR), and
  # fail where no init system runs: Debian's policy-rc.d says no, for the install only.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d > /dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  installed=yes
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends slurm-wlm munge; } \
       > "$dir/apt.log" 2>&1; then
    tail -5 "$dir/apt.log" >&2
    installed=no
  fi
  if [ "$(trap -p EXIT)" ]; then $SUDO rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
  [ "$installed" = yes ] || cannot "apt-get could not install slurm-wlm and munge (log: $dir/apt.log)"
fi
export PATH="$PATH:/usr/sbin:/sbin"

stop   # a previous start in the same folder
# The daemons must not inherit our caller's descriptors: a caller that waits for EOF on them (a
# pipe, or the socket through which Foundation's Process watches its child) would wait for the
# daemons to end. Bash keeps the script itself on 255.
for fd in $(ls /proc/$$/fd); do
  case $fd in 0|1|2|255) ;; *) eval "exec $fd>&-" 2>/dev/null || true ;; esac
done
mkdir -p "$dir/munge" "$dir/run" "$dir/log" "$dir/state" "$dir/spool"
chmod 700 "$dir/munge"

# A fresh munge key, private to this cluster.
head -c 1024 /dev/urandom > "$dir/munge/munge.key"
chmod 400 "$dir/munge/munge.key"
# The daemons run as root: with sudo, their files must be root's (munged refuses a key it does not own).
if [ -n "$SUDO" ]; then $SUDO chown -R root:root "$dir/munge" "$dir/state" "$dir/spool" "$dir/log" "$dir/run"; fi
$SUDO munged --key-file="$dir/munge/munge.key" --socket="$dir/munge/socket" --pid-file="$dir/run/munged.pid" \
  --log-file="$dir/log/munged.log" --seed-file="$dir/munge/seed" --force < /dev/null > "$dir/munged.start" 2>&1 \
  || fail "munged did not start: $(tail -3 "$dir/munged.start" "$dir/log/munged.log" 2>/dev/null)"
for _ in $(seq 50); do [ -S "$dir/munge/socket" ] && break; sleep 0.1; done
if [ -n "$SUDO" ]; then $SUDO chmod 755 "$dir/munge"; fi   # clients reach the socket as themselves

# Two free TCP ports, from 6817 (Slurm's usual ones) up.
free_port() {
  local port=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  echo "$port"
}
controller_port=$(free_port 6817)
node_port=$(free_port $((controller_port + 1)))

host=$(hostname -s)
# The node as slurmd sees it: CPUs, sockets, cores, threads and real memory of this machine.
node=$(slurmd -C | head -1)
case "$node" in NodeName=*) ;; *) fail "slurmd -C did not describe the node: $node" ;; esac
node="NodeName=$host ${node#NodeName=* } NodeAddr=127.0.0.1 State=UNKNOWN"

cat > "$dir/slurm.conf" <<EOF
# A one-node test cluster made by scripts/slurm-cluster.sh.
ClusterName=hrtemtest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$controller_port
SlurmdPort=$node_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups (containers rarely delegate them), no accounting daemon.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
# Start jobs as soon as they are submitted or resources free up (tests run many tiny tasks).
SchedulerParameters=batch_sched_delay=0
$node
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$dir/slurm.conf"

$SUDO env SLURM_CONF="$SLURM_CONF" slurmctld -c -f "$SLURM_CONF" < /dev/null > "$dir/slurmctld.start" 2>&1 \
  || fail "slurmctld did not start: $(tail -5 "$dir/slurmctld.start" "$dir/log/slurmctld.log" 2>/dev/null)"
$SUDO env SLURM_CONF="$SLURM_CONF" slurmd -f "$SLURM_CONF" -N "$host" < /dev/null > "$dir/slurmd.start" 2>&1 \
  || fail "slurmd did not start: $(tail -5 "$dir/slurmd.start" "$dir/log/slurmd.log" 2>/dev/null)"

state=""
for _ in $(seq 120); do
  state=$(sinfo -h -N -o '%T' 2>/dev/null | head -1 || true)
  [ "$state" = idle ] && break
  sleep 0.5
done
if [ "$state" != idle ]; then
  echo "--- slurmctld.log"; tail -20 "$dir/log/slurmctld.log" 2>/dev/null
  echo "--- slurmd.log"; tail -20 "$dir/log/slurmd.log" 2>/dev/null
  stop
  fail "the node did not become idle within 60 s (sinfo says: ${state:-nothing})"
fi >&2
echo "SLURM_CONF=$SLURM_CONF"
