#!/usr/bin/env bash
# Stops the test cluster started by up.sh and undoes its changes to the host: processes (by PID file),
# pods and containers, mounts under the scratch dir, the bridge, the iptables rules, the cgroup dirs, host
# paths the components created, and the sysctls they changed. Keeps the PKI, the imported images and the
# logs in the scratch dir, so the next up.sh is fast. Cluster objects (etcd) are not kept. Idempotent.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib.sh"
t0=$SECONDS

[ "$(id -u)" = 0 ] || die "hack/cluster/down.sh must run as root"
[ -d "$SCRATCH" ] || { step "no cluster state in $SCRATCH: nothing to do"; exit 0; }
exec 9>"$SCRATCH/.lock"
flock 9

step "stopping the Kubernetes components"
for c in kueue kwok kubelet kube-proxy kube-scheduler kube-controller-manager kube-apiserver etcd; do stop_component "$c"; done

step "removing pods and containers"
if alive containerd && healthy containerd; then
  for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true; done
  # containerd's CRI plugin deletes exited tasks itself; delete whatever it has not.
  task_gone() { ! ctr_ tasks ls -q 2>/dev/null | grep -qxF "$1" || ctr_ tasks delete "$1" >/dev/null 2>&1; }
  for t in $(ctr_ tasks ls -q 2>/dev/null); do
    wait_until 10 "task $t deleted" task_gone "$t" || ctr_ tasks delete -f "$t" >/dev/null 2>&1 || true
  done
  for c in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers rm "$c" >/dev/null 2>&1 || true; done
fi
stop_component containerd
# Shims of this containerd (identified by its socket path) and anything still in the pods' cgroups.
for p in /proc/[0-9]*; do
  tr '\0' ' ' < "$p/cmdline" 2>/dev/null | grep -qF -- "-address $CTR_SOCK " && kill -KILL "${p#/proc/}" 2>/dev/null || true
done
cgroup_mounts=$(awk '$3=="cgroup" || $3=="cgroup2" {print $2}' /proc/self/mounts)
for m in $cgroup_mounts; do
  for d in "$m"/kubepods "$m"/kubepods.slice "$m"/k8s.io; do
    [ -d "$d" ] || continue
    find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
  done
done

step "unmounting under $SCRATCH"
prefixes=("$SCRATCH/")
while read -r p; do prefixes+=("$p/"); done < <(cat "$SCRATCH/created-host-paths" 2>/dev/null || true)
# mountinfo escapes spaces as \040; deepest first.
mapfile -t mounts < <(awk '{print $5}' /proc/self/mountinfo | while read -r m; do
  m=$(printf '%b' "$m")
  for pre in "${prefixes[@]}"; do [[ "$m/" == "$pre"* ]] && { echo "$m"; break; }; done
done | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-)
for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done

step "removing the bridge $BRIDGE and the iptables rules"
if ip link show "$BRIDGE" >/dev/null 2>&1; then
  for v in $(ip -o link show master "$BRIDGE" | awk -F': ' '{print $2}' | cut -d@ -f1); do ip link del "$v" 2>/dev/null || true; done
  ip link del "$BRIDGE"
fi
for ipt in iptables ip6tables; do
  command -v "$ipt-save" >/dev/null || continue
  "$ipt-save" 2>/dev/null | python3 "$HERE/iptables-cleanup.py" "$RULE_COMMENT" "$EGRESS_CHAIN" | "$ipt-restore" --noflush
done
# kube-proxy's packet counters (nfnetlink_acct objects), removable once no rule uses them.
if command -v nfacct >/dev/null; then
  for a in ct_state_invalid_dropped_pkts localhost_nps_accepted_pkts; do nfacct del "$a" >/dev/null 2>&1 || true; done
fi

step "removing cgroups, host paths and runtime state; restoring sysctls"
for m in $cgroup_mounts; do
  for d in "$m"/kubepods "$m"/kubepods.slice "$m"/k8s.io; do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
done
if [ -f "$SCRATCH/created-host-paths" ]; then
  while read -r p; do [ -n "$p" ] && rm -rf --one-file-system "$p"; done < "$SCRATCH/created-host-paths"
  rm -f "$SCRATCH/created-host-paths"
fi
if [ -f "$SCRATCH/sysctl.orig" ]; then
  while IFS='=' read -r k v; do
    f=/proc/sys/${k//.//}
    [ -f "$f" ] && [ "$(cat "$f")" != "$v" ] && { echo "$v" > "$f" || true; }
  done < "$SCRATCH/sysctl.orig"
  rm -f "$SCRATCH/sysctl.orig"
fi
rm -rf --one-file-system "$SCRATCH"/{etcd,kubelet,pod-logs,run,cni/ipam,kubeconfig} "$SCRATCH/containerd/state" "$CTR_SOCK"* \
  "$SCRATCH"/containerd/root/io.containerd.grpc.v1.cri/{sandboxes,containers}

# Report anything left behind, rather than claiming a clean host.
left=()
for m in "${mounts[@]}"; do grep -qF " $m " /proc/self/mountinfo && left+=("mount $m"); done
ip link show "$BRIDGE" >/dev/null 2>&1 && left+=("bridge $BRIDGE")
for m in $cgroup_mounts; do for d in "$m"/kubepods "$m"/kubepods.slice; do [ -d "$d" ] && left+=("cgroup $d"); done; done
[ ${#left[@]} -eq 0 ] || die "left behind: ${left[*]}"
printf '==> cluster stopped (%ds)\n' $((SECONDS - t0)) >&2
