# Settings and helpers shared by up.sh, down.sh and status.sh. Source it; do not run it.
# shellcheck shell=bash
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# All runtime state (PKI, etcd data, containerd root, kubelet dir, logs) lives here, outside the repo.
SCRATCH="${COLONIES_OPERATOR_CLUSTER_DIR:-/var/lib/colonies-operator-cluster}"
K8S_BIN="$CACHE_DIR/k8s/$K8S_VERSION/bin"
GPUS="${COLONIES_OPERATOR_CLUSTER_GPUS:-4}"
# Client rate limits of the controller manager (per controller: the Job controller creates pods, updates Job
# status and removes pod finalizers within it) and the scheduler (one binding per pod). Kubernetes' defaults
# (20 and 50 requests/s) would cap the fake-node benchmarks at about 5 Jobs/s whatever the client does.
KCM_API_QPS="${COLONIES_OPERATOR_CLUSTER_KCM_QPS:-200}"
KCM_JOB_SYNCS="${COLONIES_OPERATOR_CLUSTER_JOB_SYNCS:-20}"
SCHED_API_QPS="${COLONIES_OPERATOR_CLUSTER_SCHEDULER_QPS:-200}"

# Fixed addresses: every listener is on loopback or on the cluster's own bridge.
NODE_NAME=k8s-node
BRIDGE=colk8s0
HOST_IP=10.88.0.1            # bridge gateway: node IP, apiserver, kubelet; pods reach the host here
POD_CIDR=10.88.0.0/24
SERVICE_CIDR=10.96.0.0/24
KUBERNETES_SVC_IP=10.96.0.1
APISERVER_URL="https://$HOST_IP:6443"
ETCD_CLIENT_PORT=22379
ETCD_PEER_PORT=22380
ETCD_METRICS_PORT=22381
KUBELET_HEALTHZ_PORT=10248
KCM_PORT=10257
SCHED_PORT=10259
PROXY_HEALTHZ_PORT=10256
PROXY_METRICS_PORT=10249
# Marks the iptables rules we add ourselves, so down.sh finds exactly those.
RULE_COMMENT=colonies-operator-cluster
EGRESS_CHAIN=COLOP-POD-EGRESS
# Besides other pods and this host, pods may reach these local networks only (space-separated CIDRs).
# Default: the network namespaces of the test Colonies servers (devtools/colonies_server.py).
POD_REACHABLE_CIDRS="${COLONIES_OPERATOR_CLUSTER_POD_REACHABLE:-10.89.0.0/16}"

PKI="$SCRATCH/pki"
RUN="$SCRATCH/run"
LOGS="$SCRATCH/logs"
CTR_SOCK="$SCRATCH/containerd/containerd.sock"
KUBECONFIG_OUT="$SCRATCH/kubeconfig"
COMPONENTS=(containerd etcd kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet)

# Host paths the components write outside $SCRATCH (hard-coded in containerd, libcni and the kubelet).
# up.sh records which ones it created; down.sh removes only those.
HOST_PATHS=(/run/containerd /var/lib/cni /var/lib/kubelet /var/log/containers /var/log/pods)
# sysctls the kubelet (protectKernelDefaults=false), kube-proxy or the CNI bridge plugin may change.
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys
  kernel.keys.root_maxbytes net.ipv4.ip_forward net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables)

export PATH="$K8S_BIN:$PATH"

ctr_() { ctr --address "$CTR_SOCK" --namespace k8s.io "$@"; }
kubectl_() { kubectl --kubeconfig "$KUBECONFIG_OUT" "$@"; }

pid_of() { [ -s "$RUN/$1.pid" ] && cat "$RUN/$1.pid"; }

# True when the component's recorded PID is alive and is still that program (PIDs get reused).
alive() {
  local pid exe
  pid=$(pid_of "$1") || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  [ "$(basename "${exe% (deleted)}")" = "$1" ]
}

# Health check per component; quiet, exit status only.
healthy() {
  local k=(--silent --show-error --max-time 2)
  case $1 in
    containerd) ctr --address "$CTR_SOCK" version >/dev/null 2>&1 ;;
    etcd) curl "${k[@]}" "http://127.0.0.1:$ETCD_METRICS_PORT/health" 2>/dev/null | grep -q '"health":"true"' ;;
    kube-apiserver) [ "$(curl "${k[@]}" --cacert "$PKI/ca.crt" "$APISERVER_URL/readyz" 2>/dev/null)" = ok ] ;;
    kube-controller-manager) [ "$(curl "${k[@]}" -k "https://127.0.0.1:$KCM_PORT/healthz" 2>/dev/null)" = ok ] ;;
    kube-scheduler) [ "$(curl "${k[@]}" -k "https://127.0.0.1:$SCHED_PORT/healthz" 2>/dev/null)" = ok ] ;;
    # 503 until its first sync; any answer means it is serving.
    kube-proxy) curl "${k[@]}" -o /dev/null "http://127.0.0.1:$PROXY_HEALTHZ_PORT/healthz" 2>/dev/null ;;
    kubelet) [ "$(curl "${k[@]}" "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz" 2>/dev/null)" = ok ] ;;
    *) die "no health check for $1" ;;
  esac
}

# wait_until TIMEOUT_S DESCRIPTION CMD...: polls CMD every 0.2 s until it succeeds or the deadline passes.
wait_until() {
  local timeout=$1 what=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
}

# Stops a component by its PID file: TERM, then KILL after a grace period.
stop_component() {
  local name=$1 pid
  pid=$(pid_of "$name") || { rm -f "$RUN/$name.pid"; return 0; }
  if alive "$name"; then
    kill -TERM "$pid" 2>/dev/null || true
    # Watch the exe link, not kill -0: an exited daemon stays a zombie until init gets round to reaping it.
    local deadline=$((SECONDS + ${2:-15}))
    while readlink "/proc/$pid/exe" >/dev/null 2>&1 && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    if readlink "/proc/$pid/exe" >/dev/null 2>&1; then
      kill -KILL "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 5))
      while readlink "/proc/$pid/exe" >/dev/null 2>&1 && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    fi
  fi
  rm -f "$RUN/$name.pid"
}
