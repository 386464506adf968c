#!/usr/bin/env bash
# Starts the single-node test cluster (containerd, etcd, kube-apiserver, controller-manager, scheduler,
# kube-proxy, kubelet) or checks that it is running, then prints the admin kubeconfig path on stdout.
# Idempotent: running components (PID file + health check) are left alone. Progress goes to stderr.
# Needs root. Undo everything with down.sh. Settings: hack/cluster/lib.sh and README.md.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
t0=$SECONDS
timed() { printf '==> %s (%ds)\n' "$*" $((SECONDS - t0)) >&2; }

# ---- preflight -------------------------------------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "hack/cluster/up.sh must run as root: it starts containerd and a kubelet, creates \
the bridge $BRIDGE, iptables rules and cgroups (try: sudo $0)"
if [ ! -d /sys/fs/cgroup/memory ] && ! grep -qw memory /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
  die "no memory cgroup controller (neither /sys/fs/cgroup/memory nor cgroup2 'memory'): the kubelet cannot run here"
fi

cni_bin=""
for d in /usr/lib/cni /opt/cni/bin; do [ -x "$d/bridge" ] && { cni_bin=$d; break; }; done
missing=()
for pair in containerd:containerd runc:runc iptables:iptables ip:iproute2 conntrack:conntrack gcc:gcc \
  openssl:openssl curl:curl python3:python3 nfacct:nfacct; do
  command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
[ -n "$cni_bin" ] || missing+=(containernetworking-plugins)
# static libc for the pause image
compgen -G '/usr/lib/*/libc.a' >/dev/null || missing+=(libc6-dev)
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || die "missing packages (${missing[*]}) and no apt-get to install them"
  step "installing ${missing[*]} with apt-get"
  apt-get update -qq >&2
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >&2
  for d in /usr/lib/cni /opt/cni/bin; do [ -x "$d/bridge" ] && { cni_bin=$d; break; }; done
fi

"$HACK_DIR/build-k8s.sh" >/dev/null
images=$("$HACK_DIR/images/build.sh")
[ $((SECONDS - t0)) -lt 3 ] || timed "binaries and images ready"

mkdir -p "$RUN" "$LOGS" "$SCRATCH"/{containerd/imported,cni/net.d,cni/ipam,etcd,kubelet,pod-logs,config}
chmod 700 "$SCRATCH/etcd"
# One up.sh or down.sh at a time. Daemons are started with fd 9 closed, so they do not hold the lock.
exec 9>"$SCRATCH/.lock"
flock 9

# Remember what the host looked like before the first up, for down.sh.
for p in "${HOST_PATHS[@]}"; do
  [ -e "$p" ] || grep -qxF "$p" "$SCRATCH/created-host-paths" 2>/dev/null || echo "$p" >> "$SCRATCH/created-host-paths"
done
if [ ! -f "$SCRATCH/sysctl.orig" ]; then
  for s in "${SYSCTLS[@]}"; do
    f=/proc/sys/${s//.//}
    [ -f "$f" ] && echo "$s=$(cat "$f")"
  done > "$SCRATCH/sysctl.orig.tmp"
  mv "$SCRATCH/sysctl.orig.tmp" "$SCRATCH/sysctl.orig"
fi

# start NAME CMD...: starts a daemon in its own session unless it is already running; logs to $LOGS/NAME.log.
start() {
  local name=$1; shift
  if alive "$name"; then return 0; fi
  local log="$LOGS/$name.log"
  [ "$(stat -c %s "$log" 2>/dev/null || echo 0)" -lt $((20 << 20)) ] || mv -f "$log" "$log.1"
  printf '\n---- %s starting %s\n' "$(date -u +%FT%TZ)" "$name" >> "$log"
  setsid "$@" </dev/null >>"$log" 2>&1 9>&- &
  echo $! > "$RUN/$name.pid"
}
# write_config FILE < CONTENT: replaces FILE only when the content differs, and atomically. kube-proxy exits
# when its config file changes, and a plain rewrite (truncate, then write) by a second run of this script
# while it runs is such a change: it stopped the running kube-proxy under a `make up` during the tests.
write_config() {
  cat > "$1.new"
  if cmp -s "$1.new" "$1"; then rm -f "$1.new"; else mv -f "$1.new" "$1"; fi
}
# await NAME TIMEOUT: waits for the health check; on failure shows the end of the component's log.
await() {
  if ! wait_until "$2" "$1" healthy "$1"; then
    alive "$1" || printf '%s is not running\n' "$1" >&2
    tail -n 30 "$LOGS/$1.log" >&2 || true
    die "$1 did not become healthy within $2 s (log: $LOGS/$1.log)"
  fi
}

# ---- PKI -------------------------------------------------------------------------------------------------
pki_id="$NODE_NAME $HOST_IP $KUBERNETES_SVC_IP $APISERVER_URL"
if [ "$(cat "$PKI/.inputs" 2>/dev/null)" != "$pki_id" ]; then
  step "generating certificates in $PKI"
  rm -rf "$PKI"
  "$HACK_DIR/cluster/gen-pki.sh" "$PKI" "$NODE_NAME" "$HOST_IP" "$KUBERNETES_SVC_IP" "$APISERVER_URL"
  echo "$pki_id" > "$PKI/.inputs"
fi

# ---- network ---------------------------------------------------------------------------------------------
step "network: bridge $BRIDGE $HOST_IP, pod egress limited to this machine"
if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
  if ip -4 -o addr show | awk '{print $2, $4}' | grep -E " ${HOST_IP%.*}\." | grep -qv "^$BRIDGE "; then
    die "$POD_CIDR is already used on this host: $(ip -4 -o addr show | grep " ${HOST_IP%.*}\.")"
  fi
  ip link add "$BRIDGE" type bridge
fi
ip addr replace "$HOST_IP/24" dev "$BRIDGE"
ip link set "$BRIDGE" up
# Forwarded pod traffic may only go to other pods and to the local test networks; the rest is dropped.
# In mangle FORWARD, so no ACCEPT that kube-proxy or the CNI firewall plugin put in filter FORWARD skips it.
# (Pods reach the host itself, e.g. $HOST_IP and Services DNATed to it, through INPUT, not FORWARD.)
iptables -t mangle -N "$EGRESS_CHAIN" 2>/dev/null || iptables -t mangle -F "$EGRESS_CHAIN"
for cidr in "$POD_CIDR" $POD_REACHABLE_CIDRS; do iptables -t mangle -A "$EGRESS_CHAIN" -d "$cidr" -j RETURN; done
iptables -t mangle -A "$EGRESS_CHAIN" -j DROP
jump=(FORWARD -s "$POD_CIDR" -m comment --comment "$RULE_COMMENT" -j "$EGRESS_CHAIN")
iptables -t mangle -C "${jump[@]}" 2>/dev/null || iptables -t mangle -I "${jump[@]}"
cat > "$SCRATCH/cni/net.d/10-colonies-operator.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "colonies-operator",
  "plugins": [
    {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$SCRATCH/cni/ipam",
              "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$HOST_IP"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "firewall"}
  ]
}
EOF

# ---- containerd and images -------------------------------------------------------------------------------
write_config "$SCRATCH/config/containerd.toml" <<EOF
version = 2
root = "$SCRATCH/containerd/root"
state = "$SCRATCH/containerd/state"
[grpc]
  address = "$CTR_SOCK"
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.10"
    # No CAP_SYS_RESOURCE on the project's VMs: a negative oom_score_adj (sandbox -998) is EPERM.
    restrict_oom_score_adj = true
    # Keep the CNI netns bind mounts under the state dir instead of /var/run/netns.
    netns_mounts_under_state_dir = true
    stream_server_address = "127.0.0.1"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "$cni_bin"
      conf_dir = "$SCRATCH/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "$SCRATCH/containerd/opt"
EOF
step "containerd"
start containerd containerd --config "$SCRATCH/config/containerd.toml"
await containerd 30
while IFS=$'\t' read -r ref tar; do
  stamp="$(stat -c %s-%Y "$tar")"
  marker="$SCRATCH/containerd/imported/$(basename "$tar")"
  if [ "$(cat "$marker" 2>/dev/null)" != "$stamp" ] || ! ctr_ images ls -q | grep -qxF "$ref"; then
    step "importing image $ref"
    ctr_ images import "$tar" >/dev/null
    echo "$stamp" > "$marker"
  fi
done <<< "$images"

# ---- control plane ---------------------------------------------------------------------------------------
step "etcd on 127.0.0.1:$ETCD_CLIENT_PORT"
# --unsafe-no-fsync: a throwaway test store; fsync latency on VM disks would slow every API write.
start etcd etcd --name k8stest --data-dir "$SCRATCH/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "k8stest=http://127.0.0.1:$ETCD_PEER_PORT" --listen-metrics-urls "http://127.0.0.1:$ETCD_METRICS_PORT" \
  --unsafe-no-fsync --log-level warn
await etcd 30

step "kube-apiserver on $APISERVER_URL"
start kube-apiserver kube-apiserver --etcd-servers="http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --bind-address="$HOST_IP" --advertise-address="$HOST_IP" --secure-port=6443 \
  --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" --client-ca-file="$PKI/ca.crt" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
  --service-cluster-ip-range="$SERVICE_CIDR" --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
  --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority="$PKI/ca.crt" --kubelet-preferred-address-types=InternalIP \
  --allow-privileged=true --profiling=false --v=1
await kube-apiserver 90

step "kube-controller-manager and kube-scheduler"
start kube-controller-manager kube-controller-manager --kubeconfig="$PKI/kube-controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --leader-elect=false --root-ca-file="$PKI/ca.crt" \
  --service-account-private-key-file="$PKI/sa.key" --use-service-account-credentials=true \
  --cluster-name=colonies-operator-test --profiling=false --v=1 \
  --kube-api-qps="$KCM_API_QPS" --kube-api-burst=$((KCM_API_QPS * 2)) --concurrent-job-syncs="$KCM_JOB_SYNCS"
start kube-scheduler kube-scheduler --kubeconfig="$PKI/kube-scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$SCHED_PORT" --leader-elect=false --profiling=false --v=1 \
  --kube-api-qps="$SCHED_API_QPS" --kube-api-burst=$((SCHED_API_QPS * 2))
await kube-controller-manager 60
await kube-scheduler 60

# ---- node ------------------------------------------------------------------------------------------------
step "kube-proxy (iptables mode)"
write_config "$SCRATCH/config/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$PKI/kube-proxy.kubeconfig"}
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $POD_CIDR
bindAddress: $HOST_IP
healthzBindAddress: 127.0.0.1:$PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$PROXY_METRICS_PORT
nodePortAddresses: ["$HOST_IP/32"]
# No route_localnet sysctl, no conntrack table tuning: leave the host's settings alone.
iptables: {localhostNodePorts: false}
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
# kube-proxy waits for its Node object (registered by the kubelet) before it serves healthz.
start kube-proxy kube-proxy --config="$SCRATCH/config/kube-proxy.yaml" --v=1

step "kubelet on $HOST_IP:10250"
write_config "$SCRATCH/config/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$CTR_SOCK
# containerd 1.6 does not report its cgroup driver (RuntimeConfig is unimplemented): the kubelet uses this.
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
cgroupsPerQOS: true
enforceNodeAllocatable: ["pods"]
# No CAP_SYS_RESOURCE: negative oom_score_adj and RLIMIT_NOFILE above the hard limit fail.
oomScoreAdj: 0
maxOpenFiles: $(ulimit -Hn)
address: $HOST_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$PKI/ca.crt"}
authorization: {mode: Webhook}
tlsCertFile: "$PKI/kubelet-serving.crt"
tlsPrivateKeyFile: "$PKI/kubelet-serving.key"
clusterDomain: cluster.local
# Pods get no resolver at all: they must not send DNS queries off the machine.
resolvConf: ""
podLogsDir: "$SCRATCH/pod-logs"
volumePluginDir: "$SCRATCH/kubelet/volume-plugins"
rotateCertificates: false
serverTLSBootstrap: false
# containerd 1.6 cannot pin the pause image: keep image GC off so it is never removed.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
shutdownGracePeriod: 0s
EOF
start kubelet kubelet --config="$SCRATCH/config/kubelet.yaml" --kubeconfig="$PKI/kubelet.kubeconfig" \
  --root-dir="$SCRATCH/kubelet" --cert-dir="$SCRATCH/kubelet/pki" \
  --hostname-override="$NODE_NAME" --node-ip="$HOST_IP" --v=1
await kubelet 60

# ---- ready -----------------------------------------------------------------------------------------------
cmp -s "$PKI/admin.kubeconfig" "$KUBECONFIG_OUT" 2>/dev/null || install -m 600 "$PKI/admin.kubeconfig" "$KUBECONFIG_OUT"
step "waiting for node $NODE_NAME to be Ready"
node_ready() {
  local out
  out=$(kubectl_ get node "$NODE_NAME" -o \
    'jsonpath={.status.conditions[?(@.type=="Ready")].status} {.spec.taints[*].key}' 2>/dev/null) || return 1
  [[ $out == True* && $out != *node.kubernetes.io/not-ready* ]]
}
wait_until 120 "node Ready" node_ready || {
  kubectl_ describe node "$NODE_NAME" >&2 || true; tail -n 30 "$LOGS/kubelet.log" >&2
  die "node $NODE_NAME did not become Ready within 120 s (log: $LOGS/kubelet.log)"
}
await kube-proxy 30
# Fake GPUs as an extended resource. The kubelet drops unknown extended resources when it re-registers a
# node, so this is applied on every run.
step "advertising $GPUS nvidia.com/gpu"
kubectl_ patch node "$NODE_NAME" --subresource=status --type=merge \
  -p "{\"status\":{\"capacity\":{\"nvidia.com/gpu\":\"$GPUS\"}}}" >/dev/null
gpus_allocatable() {
  [ "$(kubectl_ get node "$NODE_NAME" -o 'jsonpath={.status.allocatable.nvidia\.com/gpu}')" = "$GPUS" ]
}
wait_until 60 "GPUs allocatable" gpus_allocatable || die "nvidia.com/gpu did not show up in the node's allocatable"
step "waiting for the default ServiceAccount"
default_sa() { kubectl_ get serviceaccount default -n default >/dev/null 2>&1 &&
  kubectl_ get configmap kube-root-ca.crt -n default >/dev/null 2>&1; }
wait_until 60 "default ServiceAccount" default_sa || die "no default ServiceAccount in namespace default after 60 s"

timed "cluster ready, kubeconfig $KUBECONFIG_OUT"
echo "$KUBECONFIG_OUT"
