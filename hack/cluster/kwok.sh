#!/usr/bin/env bash
# Fake nodes for the test cluster, driven by kwok (sigs.k8s.io/kwok): the API server, scheduler and Job
# controller are the real ones; kwok plays the kubelet of every Node labelled colonies-operator.test/kwok=true.
#
#   hack/cluster/kwok.sh up            build kwok (cached) and start it, unless it runs already
#   hack/cluster/kwok.sh add N         up, then make sure fake nodes kwok-node-0 .. kwok-node-<N-1> exist and are Ready
#   hack/cluster/kwok.sh remove        delete every fake node and the pods bound to them
#   hack/cluster/kwok.sh down          remove, then stop kwok
#   hack/cluster/kwok.sh status        kwok's PID and the fake nodes
#
# Each fake node has capacity cpu $KWOK_NODE_CPU (32), memory $KWOK_NODE_MEMORY (256Gi), ephemeral-storage
# $KWOK_NODE_EPHEMERAL_STORAGE (1Ti: the operator requests some for every Job), pods $KWOK_NODE_PODS
# (110), and nvidia.com/gpu: nodes 0, 4, 8, ... have 8 labelled nvidia.com/gpu.product=nvidia-a100; nodes 1, 5,
# 9, ... have 4 labelled nvidia-t4; the others none. They carry the taint colonies-operator.test/kwok=true:NoSchedule,
# so only pods that tolerate it land there (a ColoniesExecutor's spec.jobs.tolerations; add spec.jobs.nodeSelector
# {type: kwok} to keep its pods off the real node). What pods do there: hack/kwok/kwok.yaml.
#
# Uses $KUBECONFIG, else the local cluster (hack/cluster/up.sh). kwok opens no port. Its PID file and log are
# in the cluster's scratch dir (run/kwok.pid, logs/kwok.log); down.sh stops it too.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KWOK_CONFIG="$HACK_DIR/kwok/kwok.yaml"
KUBECONFIG_KWOK="${KUBECONFIG:-$KUBECONFIG_OUT}"
LABEL=colonies-operator.test/kwok
NODE_PREFIX=kwok-node-
CPU="${KWOK_NODE_CPU:-32}"
MEMORY="${KWOK_NODE_MEMORY:-256Gi}"
PODS="${KWOK_NODE_PODS:-110}"
STORAGE="${KWOK_NODE_EPHEMERAL_STORAGE:-1Ti}"
k() { kubectl --kubeconfig "$KUBECONFIG_KWOK" "$@"; }

kwok_alive() {
  local pid exe
  pid=$(cat "$RUN/kwok.pid" 2>/dev/null) || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  [ "$(basename "${exe% (deleted)}")" = kwok ]
}

cmd_up() {
  [ -r "$KUBECONFIG_KWOK" ] || die "no kubeconfig at $KUBECONFIG_KWOK: start the cluster (hack/cluster/up.sh) or set KUBECONFIG"
  local bin
  bin=$("$HACK_DIR/build-kwok.sh")
  mkdir -p "$RUN" "$LOGS"
  if kwok_alive; then return 0; fi
  step "starting kwok (log: $LOGS/kwok.log)"
  printf '\n---- %s starting kwok\n' "$(date -u +%FT%TZ)" >> "$LOGS/kwok.log"
  local offset
  offset=$(stat -c %s "$LOGS/kwok.log")
  # HOME elsewhere: kwok would also read ~/.kwok/kwok.yaml.
  HOME="$RUN/kwok-home" setsid "$bin" --kubeconfig "$KUBECONFIG_KWOK" --config "$KWOK_CONFIG" \
    </dev/null >>"$LOGS/kwok.log" 2>&1 &
  echo $! > "$RUN/kwok.pid"
  # Started when it watches nodes; a bad config or an unreachable API server ends it.
  started() { kwok_alive && tail -c +$((offset + 1)) "$LOGS/kwok.log" | grep -q '"msg":"Watch nodes"'; }
  if ! wait_until 60 "kwok watching nodes" started; then
    tail -n 30 "$LOGS/kwok.log" >&2
    die "kwok did not start within 60 s (log: $LOGS/kwok.log)"
  fi
}

node_manifest() {
  local i=$1 gpus=0 model=""
  case $((i % 4)) in 0) gpus=8 model=nvidia-a100 ;; 1) gpus=4 model=nvidia-t4 ;; esac
  cat <<YAML
- apiVersion: v1
  kind: Node
  metadata:
    name: $NODE_PREFIX$i
    labels:
      $LABEL: "true"
      type: kwok
      kubernetes.io/hostname: $NODE_PREFIX$i
      kubernetes.io/os: linux
      kubernetes.io/arch: amd64
$( [ -n "$model" ] && echo "      nvidia.com/gpu.product: $model" )
    annotations:
      node.alpha.kubernetes.io/ttl: "0"
  spec:
    taints:
    - {key: $LABEL, value: "true", effect: NoSchedule}
  status:
    capacity: {cpu: "$CPU", memory: "$MEMORY", ephemeral-storage: "$STORAGE", pods: "$PODS", nvidia.com/gpu: "$gpus"}
YAML
}

cmd_add() {
  local n=${1:-}
  [[ $n =~ ^[0-9]+$ ]] && [ "$n" -gt 0 ] || die "usage: $0 add N (N > 0)"
  cmd_up
  local existing missing=0
  existing=$(k get nodes -l "$LABEL=true" -o name)
  { echo "apiVersion: v1"; echo "kind: List"; echo "items:"
    for i in $(seq 0 $((n - 1))); do
      grep -qxF "node/$NODE_PREFIX$i" <<< "$existing" || node_manifest "$i"
    done
  } > "$RUN/kwok-nodes.yaml"
  missing=$(grep -c '^- apiVersion' "$RUN/kwok-nodes.yaml" || true)
  if [ "$missing" -gt 0 ]; then
    step "creating $missing fake nodes (of ${NODE_PREFIX}0 .. $NODE_PREFIX$((n - 1)))"
    k create -f "$RUN/kwok-nodes.yaml" >/dev/null
  fi
  ready_count() {
    local ready
    ready=$(k get nodes -l "$LABEL=true" -o \
      'jsonpath={range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' |
      awk -v p="$NODE_PREFIX" -v n="$n" '$2=="True" && index($1,p)==1 && substr($1,length(p)+1)+0 < n' | wc -l)
    [ "$ready" -ge "$n" ]
  }
  wait_until 120 "fake nodes Ready" ready_count || {
    tail -n 20 "$LOGS/kwok.log" >&2
    die "the $n fake nodes were not all Ready within 120 s (kwok log: $LOGS/kwok.log)"
  }
  step "$n fake nodes Ready"
}

cmd_remove() {
  [ -r "$KUBECONFIG_KWOK" ] || return 0
  local nodes
  nodes=$(k get nodes -l "$LABEL=true" -o 'jsonpath={range .items[*]}{.metadata.name}{"\n"}{end}')
  [ -n "$nodes" ] || return 0
  step "removing $(wc -l <<< "$nodes") fake nodes and their pods"
  # Pods first, at once: no kubelet will confirm their end.
  k get pods -A -o 'jsonpath={range .items[*]}{.metadata.namespace} {.metadata.name} {.spec.nodeName}{"\n"}{end}' |
    awk 'NR==FNR {fake[$1]=1; next} ($3 in fake) {pods[$1]=pods[$1] " " $2} END {for (ns in pods) print ns pods[ns]}' \
      <(echo "$nodes") - |
    while read -r ns pods; do
      # shellcheck disable=SC2086
      k delete pod -n "$ns" $pods --force --grace-period=0 --wait=false >/dev/null 2>&1 || true
    done
  k delete nodes -l "$LABEL=true" --wait=false >/dev/null
  gone() { [ -z "$(k get nodes -l "$LABEL=true" -o name)" ]; }
  wait_until 60 "fake nodes deleted" gone || die "fake nodes still present after 60 s"
}

cmd_down() {
  cmd_remove
  if kwok_alive; then step "stopping kwok"; fi
  stop_component kwok
}

cmd_status() {
  if kwok_alive; then echo "kwok: running, PID $(cat "$RUN/kwok.pid")"; else echo "kwok: stopped"; fi
  k get nodes -l "$LABEL=true" --no-headers 2>/dev/null | awk '{print $2}' | sort | uniq -c |
    awk '{printf "fake nodes %s: %d\n", $2, $1} END {if (NR == 0) print "fake nodes: none"}'
}

case "${1:-}" in
  up) cmd_up ;;
  add) cmd_add "${2:-}" ;;
  remove) cmd_remove ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) die "usage: $0 up | add N | remove | down | status" ;;
esac
