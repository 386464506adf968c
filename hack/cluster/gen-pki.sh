#!/usr/bin/env bash
# Creates the test cluster's CA, service-account keys, serving and client certificates, and one
# kubeconfig per client (certificates embedded). openssl only.
# usage: gen-pki.sh DIR NODE_NAME NODE_IP KUBERNETES_SVC_IP APISERVER_URL
set -euo pipefail
dir=$1 node=$2 node_ip=$3 svc_ip=$4 server=$5
mkdir -p "$dir"
cd "$dir"
umask 077

openssl genrsa -out ca.key 2048 2>/dev/null
openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=colonies-operator-test-ca" -out ca.crt
openssl genrsa -out sa.key 2048 2>/dev/null
openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null

# cert NAME SUBJECT clientAuth|serverAuth [SANS]
cert() {
  local name=$1 subj=$2 usage=$3 sans=${4:-}
  openssl genrsa -out "$name.key" 2048 2>/dev/null
  openssl req -new -key "$name.key" -subj "$subj" -out "$name.csr"
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    [ -z "$sans" ] || echo "subjectAltName=$sans"
  } > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -sha256 \
    -extfile "$name.ext" -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

cert apiserver "/CN=kube-apiserver" serverAuth \
  "DNS:localhost,DNS:$node,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:$node_ip,IP:$svc_ip"
cert kubelet-serving "/CN=$node" serverAuth "DNS:$node,DNS:localhost,IP:127.0.0.1,IP:$node_ip"
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
cert admin "/O=system:masters/CN=admin" clientAuth
cert kube-controller-manager "/CN=system:kube-controller-manager" clientAuth
cert kube-scheduler "/CN=system:kube-scheduler" clientAuth
cert kube-proxy "/CN=system:kube-proxy" clientAuth
cert kubelet "/O=system:nodes/CN=system:node:$node" clientAuth

b64() { base64 -w0 < "$1"; }
for user in admin kube-controller-manager kube-scheduler kube-proxy kubelet; do
  cat > "$user.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: colonies-operator-test
  cluster:
    server: $server
    certificate-authority-data: $(b64 ca.crt)
users:
- name: $user
  user:
    client-certificate-data: $(b64 "$user.crt")
    client-key-data: $(b64 "$user.key")
contexts:
- name: $user@colonies-operator-test
  context: {cluster: colonies-operator-test, user: $user}
current-context: $user@colonies-operator-test
EOF
done
