# shellcheck shell=bash
# The `node` group of scripts/services.sh: a one-node Kubernetes cluster on this machine around
# the `kube` group's API server. Sourced by services.sh (uses its helpers and variables).
#
# Components (all host processes, as root):
#   containerd          Debian's containerd + runc, CRI plugin, its own root/state/socket
#   kubelet             node `ecom-node` at ECOM_NODE_IP, cgroupfs (cgroup v1), CNI bridge
#   controller-manager  kube-controller-manager (Job, Deployment, GC, namespace, SA token...)
#   scheduler           kube-scheduler
#   kube-proxy          iptables mode (Services' ClusterIPs)
# and, as pods, CoreDNS in kube-system behind the Service kube-dns (10.96.0.10).
#
# Pods get addresses in ECOM_POD_CIDR on the bridge ecom-cni0 (Debian's CNI plugins: bridge,
# host-local, portmap, loopback), in network namespaces created by containerd on this machine.
# Every address they can reach is on this machine: the bridge, the Service range (kube-proxy
# DNATs it to pods or to ECOM_NODE_IP) and ECOM_NODE_IP itself, where the harness's servers
# listen. Forwarding from the bridge to any other interface is dropped.

NODE_NAME="${ECOM_NODE_NAME:-ecom-node}"
ECOM_POD_CIDR="${ECOM_POD_CIDR:-10.244.0.0/24}"
ECOM_POD_GATEWAY="${ECOM_POD_GATEWAY:-10.244.0.1}"
ECOM_SERVICE_CIDR="${ECOM_SERVICE_CIDR:-10.96.0.0/16}"
ECOM_CLUSTER_DNS="${ECOM_CLUSTER_DNS:-10.96.0.10}"
NODE_BRIDGE=ecom-cni0
NODE_DIR="$ECOM_STATE/node"
CONTAINERD_SOCK="$NODE_DIR/containerd/containerd.sock"
KUBELET_DIR="$NODE_DIR/kubelet"
CNI_BIN_DIR="${ECOM_CNI_BIN_DIR:-/usr/lib/cni}"
PAUSE_IMAGE="localhost/ecom-pause:3.10"
COREDNS_IMAGE="localhost/ecom-coredns:${COREDNS_VERSION:-unset}"
# iptables rules of the harness itself carry this comment, so `down` can remove exactly them.
NODE_RULE_TAG="ecom-node"

node_k8s_bin() { printf '%s/bin/%s' "$K8S_HOME" "$1"; }

# Debian packages the node needs; installed when missing.
node_packages() {
  ensure_cmd containerd containerd
  ensure_cmd runc runc
  [[ -x $CNI_BIN_DIR/bridge ]] || apt_install containernetworking-plugins ||
    die "the CNI plugins are missing and installing containernetworking-plugins failed"
  ensure_cmd iptables iptables
  ensure_cmd conntrack conntrack
  ensure_cmd socat socat
  ensure_cmd ip iproute2
}

resolve_node() {
  [[ $(id -u) -eq 0 ]] || die "the node group runs containerd and the kubelet, which need root"
  node_packages
  build_kubernetes
  # The pause and CoreDNS images come from the project's image script (built here, no pulls).
  "$SCRIPT_DIR/images.sh" docker-up >&2
  "$SCRIPT_DIR/images.sh" pause >&2
  "$SCRIPT_DIR/images.sh" coredns >&2
}

# Client certificates of the node's components, signed by the harness CA; the kubelet's
# serving certificate names ECOM_NODE_IP.
ensure_node_pki() {
  local marker="$PKI_DIR/.node-$NODE_NAME-$ECOM_NODE_IP"
  [[ -f $marker ]] && return 0
  log "generating the node's certificates in $PKI_DIR"
  (
    cd "$PKI_DIR"
    umask 077
    client_cert() { # NAME SUBJECT
      openssl req -newkey rsa:2048 -nodes -sha256 -keyout "$1.key" -out "$1.csr" -subj "$2"
      printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
        "extendedKeyUsage=clientAuth" >"$1.ext"
      openssl x509 -req -sha256 -days 3650 -in "$1.csr" -CA ca.crt -CAkey ca.key \
        -set_serial "0x$(openssl rand -hex 16)" -extfile "$1.ext" -out "$1.crt"
    }
    client_cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME"
    client_cert controller-manager "/CN=system:kube-controller-manager"
    client_cert scheduler "/CN=system:kube-scheduler"
    client_cert kube-proxy "/CN=system:kube-proxy"
    # The API server's client certificate towards the kubelet (logs, exec, port-forward).
    client_cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
    openssl req -newkey rsa:2048 -nodes -sha256 -keyout kubelet-serving.key -out kubelet-serving.csr \
      -subj "/CN=$NODE_NAME"
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" "subjectAltName=IP:$ECOM_NODE_IP,DNS:$NODE_NAME" >kubelet-serving.ext
    openssl x509 -req -sha256 -days 3650 -in kubelet-serving.csr -CA ca.crt -CAkey ca.key \
      -set_serial "0x$(openssl rand -hex 16)" -extfile kubelet-serving.ext -out kubelet-serving.crt
    rm -f ./*.csr ./*.ext
  ) >"$LOG_DIR/pki-node.log" 2>&1 || {
    tail -n 30 "$LOG_DIR/pki-node.log" >&2
    die "openssl failed while generating the node's certificates (log: $LOG_DIR/pki-node.log)"
  }
  touch "$marker"
}

# node_kubeconfig NAME: writes the kubeconfig of component NAME (its client certificate) and
# prints its path.
node_kubeconfig() {
  mkdir -p "$NODE_DIR"
  kubeconfig_file "$NODE_DIR/$1.kubeconfig" "$1" "$1"
  printf '%s' "$NODE_DIR/$1.kubeconfig"
}

write_containerd_config() {
  mkdir -p "$NODE_DIR/containerd" "$NODE_DIR/cni/net.d" "$NODE_DIR/cni/ipam"
  cat >"$NODE_DIR/containerd/config.toml" <<EOF
# generated by scripts/services.sh (node group)
version = 2
root = "$NODE_DIR/containerd/root"
state = "$NODE_DIR/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$NODE_DIR/containerd/containerd.sock.ttrpc"
[debug]
  level = "warn"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # This VM refuses a negative oom_score_adj; the kubelet asks -998 for the pause container.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$NODE_DIR/cni/net.d"
EOF
  cat >"$NODE_DIR/cni/net.d/10-ecom.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "ecom-pods",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$NODE_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$NODE_DIR/cni/ipam",
        "ranges": [[{"subnet": "$ECOM_POD_CIDR", "gateway": "$ECOM_POD_GATEWAY"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

write_kubelet_config() {
  mkdir -p "$KUBELET_DIR" "$NODE_DIR/manifests"
  # Pods with dnsPolicy Default get this file: no resolver outside the machine.
  printf 'nameserver %s\nsearch cluster.local\n' "$ECOM_CLUSTER_DNS" >"$NODE_DIR/resolv.conf"
  cat >"$NODE_DIR/kubelet.yaml" <<EOF
# generated by scripts/services.sh (node group)
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $ECOM_NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI_DIR/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI_DIR/kubelet-serving.crt
tlsPrivateKeyFile: $PKI_DIR/kubelet-serving.key
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
cgroupDriver: cgroupfs
# This VM has cgroup v1 only; Kubernetes 1.34's kubelet still runs on it when told to.
failCgroupV1: false
failSwapOn: false
clusterDomain: cluster.local
clusterDNS: [$ECOM_CLUSTER_DNS]
resolvConf: $NODE_DIR/resolv.conf
staticPodPath: $NODE_DIR/manifests
# The VM refuses negative oom_score_adj values.
oomScoreAdj: 0
maxPods: 60
serializeImagePulls: false
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
nodeStatusReportFrequency: 10s
syncFrequency: 10s
fileCheckFrequency: 5s
EOF
}

write_kube_proxy_config() {
  cat >"$NODE_DIR/kube-proxy.yaml" <<EOF
# generated by scripts/services.sh (node group)
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $(node_kubeconfig kube-proxy)}
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $ECOM_POD_CIDR
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
oomScoreAdj: 0
# Leave the host's conntrack sysctls alone.
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
}

# Kernel settings the bridge and kube-proxy need, and a rule that keeps pod traffic on this
# machine: nothing from the pod bridge is forwarded to another interface.
node_network_setup() {
  sysctl -qw net.ipv4.ip_forward=1
  sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true
  # The bridge exists before the first pod, with its gateway address, so the kubelet and the
  # rule below have it from the start.
  if ! ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
    ip link add "$NODE_BRIDGE" type bridge
  fi
  ip addr replace "$ECOM_POD_GATEWAY/${ECOM_POD_CIDR#*/}" dev "$NODE_BRIDGE"
  ip link set "$NODE_BRIDGE" up
  iptables -C FORWARD -i "$NODE_BRIDGE" ! -o "$NODE_BRIDGE" -m comment --comment "$NODE_RULE_TAG" -j DROP 2>/dev/null ||
    iptables -I FORWARD 1 -i "$NODE_BRIDGE" ! -o "$NODE_BRIDGE" -m comment --comment "$NODE_RULE_TAG" -j DROP
}

start_node() {
  local c
  mkdir -p "$NODE_DIR"
  ensure_node_pki
  node_network_setup
  write_containerd_config
  start_component containerd "$NODE_DIR/containerd" containerd --config "$NODE_DIR/containerd/config.toml"
  wait_ready node "containerd at $CONTAINERD_SOCK" ctr_ready
  # Images the node needs before its first pod; nothing is ever pulled.
  "$SCRIPT_DIR/images.sh" load "$CONTAINERD_SOCK" "$PAUSE_IMAGE" "$COREDNS_IMAGE" >&2 ||
    fail_group node "loading the pause and CoreDNS images into containerd failed"
  for c in "${NODE_RESTARTABLE[@]}"; do start_node_component "$c"; done
}

# The node's components whose state lives in the API server and in containerd: each one can
# be started again alone after it died (`up node` does, keeping the pods).
NODE_RESTARTABLE=(controller-manager scheduler kubelet kube-proxy)

start_node_component() {
  case "$1" in
    controller-manager)
      start_component controller-manager "$NODE_DIR" "$(node_k8s_bin kube-controller-manager)" \
        --kubeconfig "$(node_kubeconfig controller-manager)" \
        --authentication-kubeconfig "$NODE_DIR/controller-manager.kubeconfig" \
        --authorization-kubeconfig "$NODE_DIR/controller-manager.kubeconfig" \
        --bind-address 127.0.0.1 --secure-port 10257 --cert-dir "$NODE_DIR/controller-manager-certs" \
        --service-account-private-key-file "$PKI_DIR/sa.key" --root-ca-file "$PKI_DIR/ca.crt" \
        --cluster-signing-cert-file "$PKI_DIR/ca.crt" --cluster-signing-key-file "$PKI_DIR/ca.key" \
        --use-service-account-credentials --service-cluster-ip-range "$ECOM_SERVICE_CIDR" \
        --leader-elect=false --profiling=false --v 1
      ;;
    scheduler)
      start_component scheduler "$NODE_DIR" "$(node_k8s_bin kube-scheduler)" \
        --kubeconfig "$(node_kubeconfig scheduler)" \
        --authentication-kubeconfig "$NODE_DIR/scheduler.kubeconfig" \
        --authorization-kubeconfig "$NODE_DIR/scheduler.kubeconfig" \
        --bind-address 127.0.0.1 --secure-port 10259 --leader-elect=false --profiling=false --v 1
      ;;
    kubelet)
      write_kubelet_config
      start_component kubelet "$KUBELET_DIR" "$(node_k8s_bin kubelet)" \
        --config "$NODE_DIR/kubelet.yaml" --kubeconfig "$(node_kubeconfig kubelet)" \
        --root-dir "$KUBELET_DIR" --cert-dir "$KUBELET_DIR/pki" \
        --hostname-override "$NODE_NAME" --node-ip "$ECOM_NODE_IP" --v 1
      ;;
    kube-proxy)
      write_kube_proxy_config
      start_component kube-proxy "$NODE_DIR" "$(node_k8s_bin kube-proxy)" \
        --config "$NODE_DIR/kube-proxy.yaml" --v 1
      ;;
    *) die "unknown node component '$1'" ;;
  esac
}

# With containerd alive, starts whichever restartable component died; returns 1 when
# containerd itself is gone (then the whole node starts over).
restart_dead_node_components() {
  local c
  running_pid containerd >/dev/null || return 1
  for c in "${NODE_RESTARTABLE[@]}"; do
    running_pid "$c" >/dev/null && continue
    log "node: $c is not running; starting it again (pods and containerd are kept)"
    start_node_component "$c"
  done
}

ctr_ready() { ctr --address "$CONTAINERD_SOCK" version >/dev/null; }

node_kubectl() { "$KUBECTL_BIN" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

node_is_ready() {
  node_kubectl get node "$NODE_NAME" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -qx True
}

coredns_ready() {
  node_kubectl -n kube-system get deployment coredns \
    -o jsonpath='{.status.availableReplicas}' 2>/dev/null | grep -qx 1
}

ready_node() {
  wait_ready node "containerd at $CONTAINERD_SOCK" ctr_ready
  wait_ready node "node $NODE_NAME Ready (kubectl get node)" node_is_ready
  sed -e "s|@COREDNS_IMAGE@|$COREDNS_IMAGE|g" -e "s|@CLUSTER_DNS@|$ECOM_CLUSTER_DNS|g" \
    "$SERVICES_DIR/node/coredns.yaml" | node_kubectl apply --server-side --force-conflicts \
    --field-manager ecom-services -f - >>"$LOG_DIR/probe-node.log" 2>&1 ||
    fail_group node "applying CoreDNS (scripts/services/node/coredns.yaml) failed (log: $LOG_DIR/probe-node.log)"
  wait_ready node "CoreDNS available in kube-system" coredns_ready
}

# Stops every pod container, then containerd and its shims, and removes what they left:
# mounts under the node's directories, the pods' network namespaces, the bridge, kube-proxy's
# and the harness's iptables rules, the pods' cgroups.
stop_node() {
  local c task pid ns
  for c in kubelet kube-proxy scheduler controller-manager; do stop_component "$c" 10; done
  if ctr_ready 2>/dev/null; then
    for task in $(ctr --address "$CONTAINERD_SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr --address "$CONTAINERD_SOCK" -n k8s.io tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true
    done
  fi
  stop_component containerd 10
  # Shims outlive containerd; ours name our socket on their command line.
  for pid in $(pgrep -f "containerd-shim.*$NODE_DIR" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
  sleep 0.5
  node_unmount_all
  for ns in $(ip netns list 2>/dev/null | awk '/^cni-/{print $1}'); do ip netns delete "$ns" 2>/dev/null || true; done
  ip link delete "$NODE_BRIDGE" 2>/dev/null || true
  if [[ -x $(node_k8s_bin kube-proxy) ]] && command -v iptables >/dev/null 2>&1; then
    "$(node_k8s_bin kube-proxy)" --cleanup >/dev/null 2>&1 || true
    while iptables -D FORWARD -i "$NODE_BRIDGE" ! -o "$NODE_BRIDGE" -m comment --comment "$NODE_RULE_TAG" -j DROP 2>/dev/null; do :; done
    node_remove_kubelet_chains
  fi
  node_remove_cgroups
  rm -rf "$NODE_DIR"
}

# The kubelet's own iptables chains (KUBE-FIREWALL, KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT),
# which kube-proxy's cleanup leaves: the jumps to them from the built-in chains, then the
# chains. (This machine runs no other kubelet on the host's network.)
node_remove_kubelet_chains() {
  local table rule chain
  for table in filter nat mangle; do
    while read -r rule; do
      eval "iptables -t $table -D ${rule#-A }" 2>/dev/null || true
    done < <(iptables -t "$table" -S 2>/dev/null | grep -E '^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) .*-j KUBE-(FIREWALL|KUBELET-CANARY)')
    for chain in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT; do
      iptables -t "$table" -F "$chain" 2>/dev/null || true
      iptables -t "$table" -X "$chain" 2>/dev/null || true
    done
  done
}

# Unmounts (deepest first) everything mounted below the node's directories.
node_unmount_all() {
  local m
  for _ in 1 2 3; do
    mapfile -t mounts < <(awk -v d="$NODE_DIR" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r)
    ((${#mounts[@]})) || return 0
    for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  done
}

# The kubelet's cgroups (cgroupfs driver): kubepods under every v1 hierarchy.
node_remove_cgroups() {
  local root d
  for root in /sys/fs/cgroup/*/; do
    [[ -d ${root}kubepods ]] || continue
    find "${root}kubepods" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
  for d in /sys/fs/cgroup/*/kubepods.slice /sys/fs/cgroup/systemd/kubepods; do
    [[ -d $d ]] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  return 0
}
