# shellcheck shell=bash
# shellcheck disable=SC2317  # health checks are called indirectly via wait_until
# The local cluster's real node `pake-node-0` (scripts/cluster): a kubelet on Debian's
# containerd + runc, CNI bridge, kube-proxy (nftables), CoreDNS (cluster.local only) and a
# NetworkPolicy enforcer (kube-network-policies where the kernel has nftables queue support,
# kube-router's network policy controller on iptables + ipset otherwise). See
# docs/local-cluster.md, section "The real node".
#
# Layout: the node's network lives in a network namespace of its own (NODE_NETNS), joined to
# the machine by one veth pair. containerd (and so the CNI bridge and every pod), kube-proxy
# and kube-network-policies run inside it; their nftables tables, the bridge, the routes and
# the sysctls are that namespace's, so two local clusters never share any of them and `down`
# removes everything by deleting the namespace. The kubelet runs in the machine's namespace
# (it serves the API server on the node IP, the machine end of the veth pair) and reaches the
# API server on 127.0.0.1; processes inside the namespace reach it and the local registry
# through two relays listening on the node IP. The namespace has no default route: a pod can
# reach other pods, Services, the node IP and nothing else.
#
# Sourced by scripts/cluster; uses its STATE, PKI, LOGS, RUN, HOST, API_PORT, SERVICE_CIDR,
# log/die/start helpers.

REAL_NODE="${PAKE_CLUSTER_REAL_NODE:-1}"
NODE_NAME=pake-node-0
NODE_LABEL="pake.dev/node=real"
NODE_TAINT_KEY="pake.dev/node"
CLUSTER_DNS_IP=198.19.0.10
REGISTRY_PORT=5000
NODE_COMPONENTS=(relay-apiserver relay-registry containerd kubelet kube-proxy kube-network-policies kube-router-netpol)
# The two NetworkPolicy enforcers; `up` starts at most one (node_choose_netpol).
NETPOL_ENFORCERS=(kube-network-policies kube-router-netpol)
NODE_DEBIAN_PACKAGES=(containerd runc containernetworking-plugins nftables iptables ipset conntrack socat jq busybox-static)

# Per-instance names and addresses, derived from the state dir so that two instances never
# pick the same ones. Index 0 is the default instance; others get 1..62.
NODE_TAG="$(printf '%s' "${STATE}" | sha256sum | cut -c1-6)"
if [[ "${STATE}" == "${HOME}/.local/state/pake-cluster" ]]; then
  NODE_INDEX=0
else
  NODE_INDEX=$((1 + 16#${NODE_TAG:0:4} % 62))
fi
NODE_NETNS="pake-${NODE_TAG}"
NODE_VETH_HOST="pkh-${NODE_TAG}"  # machine end, holds REAL_NODE_IP
NODE_VETH_NS="pkn-${NODE_TAG}"    # namespace end, holds NODE_NS_IP
NODE_BRIDGE="pkbr-${NODE_TAG}"    # inside the namespace
REAL_NODE_IP="198.18.255.$((4 * NODE_INDEX + 1))"
NODE_NS_IP="198.18.255.$((4 * NODE_INDEX + 2))"
NODE_LINK_PREFIX=30
NODE_POD_SUBNET="198.18.$((128 + NODE_INDEX)).0/24"
NODE_POD_GATEWAY="198.18.$((128 + NODE_INDEX)).1"
NODE_CGROUP="pake-${NODE_TAG}"
NODE_NFT_TABLE="pake-netpol-${NODE_TAG}"

NODE_STATE="${STATE}/node"
NODE_SOCK="${NODE_STATE}/containerd.sock"
NODE_PKI="${PKI}/node"

PAUSE_IMAGE="pake.local/pause:1"
COREDNS_IMAGE="pake.local/coredns:${COREDNS_VERSION:-v1.14.7}"
# `pake verify`'s runtime posture probe (an ephemeral container): Debian's static busybox.
PROBE_IMAGE="pake.local/probe:1"

node_enabled() { [[ "${REAL_NODE}" == 1 ]]; }

# kube-network-policies hands packets to user space with the nftables `queue` statement. A
# kernel built without CONFIG_NFT_QUEUE (this project's machines: NETFILTER_NETLINK_QUEUE and
# the iptables NFQUEUE target are there, nft_queue is not) refuses the rule with
#   Error: Could not process rule: No such file or directory
# Probed once per `up` in a throwaway network namespace; the result decides whether the
# enforcer is built and started (it would run, but enforce nothing).
NFT_QUEUE_ERROR=""
node_probe_nft_queue() {
  local probe="pake-nftq-${NODE_TAG}" out
  ip netns del "${probe}" 2>/dev/null || true
  ip netns add "${probe}" || { NFT_QUEUE_ERROR="ip netns add failed"; return 1; }
  local rc=0
  out="$(ip netns exec "${probe}" sh -c 'nft add table inet probe && nft add chain inet probe c "{ type filter hook forward priority 0; }" && nft add rule inet probe c queue num 100 bypass' 2>&1)" || rc=$?
  ip netns del "${probe}" 2>/dev/null || true
  if ((rc != 0)); then
    NFT_QUEUE_ERROR="$(printf '%s' "${out}" | head -n1)"
    return 1
  fi
}
netpol_supported() { [[ -z "${NFT_QUEUE_ERROR}" ]]; }

# kube-router's network policy controller needs, in the node namespace: ipsets (hash:ip,
# hash:net), the iptables `set`, `physdev` (bridged pod-to-pod traffic), `conntrack`, `addrtype`,
# `mark`, NFLOG and REJECT. Probed in a throwaway namespace with the `iptables` that
# kube-router will run (Debian's alternative: iptables-nft).
IPSET_ERROR=""
node_probe_ipset() {
  local probe="pake-ipsq-${NODE_TAG}" out rc=0
  command -v ipset >/dev/null 2>&1 || { IPSET_ERROR="no ipset command"; return 1; }
  ip netns del "${probe}" 2>/dev/null || true
  ip netns add "${probe}" || { IPSET_ERROR="ip netns add failed"; return 1; }
  out="$(ip netns exec "${probe}" sh -c '
    ipset create pake-probe hash:ip && ipset create pake-probe-net hash:net &&
    iptables -N PAKE-PROBE &&
    iptables -A PAKE-PROBE -m set --match-set pake-probe src -m set --match-set pake-probe-net dst -j ACCEPT &&
    iptables -A PAKE-PROBE -m physdev --physdev-is-bridged -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT &&
    iptables -A PAKE-PROBE -m addrtype --src-type LOCAL -m comment --comment probe -j ACCEPT &&
    iptables -A PAKE-PROBE -m mark ! --mark 0x10000/0x10000 -m limit --limit 10/minute -j NFLOG --nflog-group 100 &&
    iptables -A PAKE-PROBE -m mark ! --mark 0x10000/0x10000 -j REJECT &&
    iptables -A PAKE-PROBE -j MARK --set-xmark 0x10000/0x10000' 2>&1)" || rc=$?
  ip netns del "${probe}" 2>/dev/null || true
  if ((rc != 0)); then
    IPSET_ERROR="$(printf '%s' "${out}" | head -n1)"
    return 1
  fi
}

# Decides NETPOL_ENFORCER (kube-network-policies, kube-router-netpol or empty) and
# NETPOL_REASON (one line for `status`).
NETPOL_ENFORCER=""
NETPOL_REASON=""
node_choose_netpol() {
  if node_probe_nft_queue; then
    NETPOL_ENFORCER=kube-network-policies
    NETPOL_REASON="nftables queue supported"
  elif node_probe_ipset; then
    NETPOL_ENFORCER=kube-router-netpol
    NETPOL_REASON="kernel lacks nft queue (${NFT_QUEUE_ERROR}); iptables + ipset enforcer"
  else
    NETPOL_ENFORCER=""
    NETPOL_REASON="kernel lacks nft queue (${NFT_QUEUE_ERROR}) and iptables/ipset (${IPSET_ERROR})"
  fi
}

# What the last `up` chose, for `status` and `up`'s fast path (which do not probe).
node_load_netpol_choice() {
  local f="${NODE_STATE}/netpol-enforcer"
  [[ -f "${f}" ]] || return 1
  NETPOL_ENFORCER="$(sed -n 1p "${f}")"
  NETPOL_REASON="$(sed -n 2p "${f}")"
  [[ "${NETPOL_ENFORCER}" == none ]] && NETPOL_ENFORCER=""
  # node_binaries (the node cache's completeness) follows the same choice.
  [[ "${NETPOL_ENFORCER}" == kube-network-policies ]] || NFT_QUEUE_ERROR="${NFT_QUEUE_ERROR:-not probed}"
  return 0
}

node_record_netpol_choice() {
  printf '%s\n%s\n' "${NETPOL_ENFORCER:-none}" "${NETPOL_REASON}" >"${NODE_STATE}/netpol-enforcer"
  rm -f "${NODE_STATE}/netpol-unsupported" # written by older versions of this script
}

# " name name ...": the node components this instance runs (for `up`'s messages).
node_component_list() {
  local c
  for c in "${NODE_COMPONENTS[@]}"; do
    netpol_not_chosen "${c}" || printf ' %s' "${c}"
  done
}

# An enforcer component that this instance does not run.
netpol_not_chosen() {
  local c="$1" e
  for e in "${NETPOL_ENFORCERS[@]}"; do
    [[ "${c}" == "${e}" && "${c}" != "${NETPOL_ENFORCER}" ]] && return 0
  done
  return 1
}

node_validate_switch() {
  case "${REAL_NODE}" in
    0 | 1) ;;
    *) die "PAKE_CLUSTER_REAL_NODE must be 1 (a real node pake-node-0) or 0 (kwok nodes only), not '${REAL_NODE}'" ;;
  esac
}

# ---------------------------------------------------------------------------------------------
# packages

node_install_packages() {
  local missing=() p
  for p in "${NODE_DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f '${Status}' "${p}" 2>/dev/null | grep -q 'install ok installed' || missing+=("${p}")
  done
  ((${#missing[@]} == 0)) && return 0
  command -v apt-get >/dev/null 2>&1 || die "the real node needs the Debian packages ${missing[*]} (no apt-get here); or set PAKE_CLUSTER_REAL_NODE=0"
  log "installing Debian packages for the real node: ${missing[*]}"
  apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
}

node_check_privileges() {
  [[ "$(id -u)" == 0 ]] || die "the real node needs root (network namespace, cgroups, containerd); run as root or set PAKE_CLUSTER_REAL_NODE=0"
}

# ---------------------------------------------------------------------------------------------
# images: FROM-scratch OCI archives built without a Docker engine, imported with ctr

# oci_image OUT_TAR REF USER ENTRYPOINT ROOTFS_DIR
oci_image() {
  local out="$1" ref="$2" user="$3" entry="$4" rootfs="$5" d layer cfg man ld ls cd cs md ms
  d="$(mktemp -d)"
  mkdir -p "${d}/blobs/sha256"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "${rootfs}" -cf "${d}/layer.tar" .
  ld="$(sha256sum "${d}/layer.tar" | cut -d' ' -f1)"
  ls="$(stat -c %s "${d}/layer.tar")"
  mv "${d}/layer.tar" "${d}/blobs/sha256/${ld}"
  cfg="$(printf '{"architecture":"amd64","os":"linux","config":{"User":"%s","Entrypoint":["%s"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "${user}" "${entry}" "${ld}")"
  cd="$(printf '%s' "${cfg}" | sha256sum | cut -d' ' -f1)"
  cs="${#cfg}"
  printf '%s' "${cfg}" >"${d}/blobs/sha256/${cd}"
  man="$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' "${cd}" "${cs}" "${ld}" "${ls}")"
  md="$(printf '%s' "${man}" | sha256sum | cut -d' ' -f1)"
  ms="${#man}"
  printf '%s' "${man}" >"${d}/blobs/sha256/${md}"
  printf '{"imageLayoutVersion":"1.0.0"}' >"${d}/oci-layout"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "${md}" "${ms}" "${ref}" "${ref##*:}" >"${d}/index.json"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "${d}" -cf "${out}" oci-layout index.json blobs
  rm -rf "${d}"
}

node_ctr() { ctr --address "${NODE_SOCK}" --namespace k8s.io "$@"; }

# node_import_image REF USER BINARY : a one-binary image REF (entrypoint /BINARY's name).
node_import_image() {
  local ref="$1" user="$2" bin="$3" root tar name
  [[ "$(node_ctr images ls -q 2>/dev/null)" == *"${ref}"* ]] && return 0
  name="$(basename "${bin}")"
  root="$(mktemp -d)"
  tar="$(mktemp)"
  cp "${bin}" "${root}/${name}"
  oci_image "${tar}" "${ref}" "${user}" "/${name}" "${root}"
  node_ctr images import "${tar}" >/dev/null || { rm -rf "${root}" "${tar}"; die "ctr images import ${ref} failed"; }
  rm -rf "${root}" "${tar}"
  [[ "$(node_ctr images ls -q)" == *"${ref}"* ]] || die "ctr images import did not create ${ref}"
  # Pinned: the kubelet's image garbage collection leaves it alone.
  node_ctr images label "${ref}" io.cri-containerd.pinned=pinned >/dev/null
}

# ---------------------------------------------------------------------------------------------
# PKI

node_make_pki() {
  [[ -f "${NODE_PKI}/.complete" ]] && return 0
  mkdir -p "${NODE_PKI}"
  chmod 700 "${NODE_PKI}"
  # The node's identity (Node authorizer + NodeRestriction), its serving certificate for the
  # API server's exec/logs/port-forward calls, kube-proxy's and kube-network-policies' identities.
  sign_cert node/kubelet-client "/O=system:nodes/CN=system:node:${NODE_NAME}" "${client_ext}"
  sign_cert node/kubelet-serving "/CN=${NODE_NAME}" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:${REAL_NODE_IP},DNS:${NODE_NAME}"
  sign_cert node/kube-proxy "/CN=system:kube-proxy" "${client_ext}"
  sign_cert node/kube-network-policies "/CN=system:pake:kube-network-policies" "${client_ext}"
  rm -f "${PKI}"/*.srl
  touch "${NODE_PKI}/.complete"
}

# node_kubeconfig FILE CERT SERVER : a kubeconfig for one node identity. Processes in the node
# namespace reach the API server through the relay on the node IP; its certificate has no SAN
# for that address, so they verify it as "kubernetes" (a SAN it has).
node_kubeconfig() {
  local file="$1" cert="$2" server="$3"
  cat >"${file}.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: pake-local
  cluster:
    server: ${server}
    tls-server-name: kubernetes
    certificate-authority: ${PKI}/ca.crt
users:
- name: ${cert}
  user:
    client-certificate: ${NODE_PKI}/${cert}.crt
    client-key: ${NODE_PKI}/${cert}.key
contexts:
- name: default
  context:
    cluster: pake-local
    user: ${cert}
current-context: default
EOF
  chmod 600 "${file}.tmp"
  mv "${file}.tmp" "${file}"
}

# ---------------------------------------------------------------------------------------------
# network namespace, veth, routes

ns() { ip netns exec "${NODE_NETNS}" "$@"; }

node_netns_up() {
  if ! ip netns list 2>/dev/null | grep -qw "^${NODE_NETNS}"; then
    ip link show "${NODE_VETH_HOST}" >/dev/null 2>&1 && ip link del "${NODE_VETH_HOST}"
    # Another instance (or a leftover) holding our addresses would make routing ambiguous.
    if ip -4 addr show 2>/dev/null | grep -q "inet ${REAL_NODE_IP}/"; then
      die "node IP ${REAL_NODE_IP} is already on an interface of this machine (another local cluster with the same index?); set PAKE_CLUSTER_REAL_NODE=0 for this instance"
    fi
    ip netns add "${NODE_NETNS}" || die "ip netns add ${NODE_NETNS} failed"
    ip link add "${NODE_VETH_HOST}" type veth peer name "${NODE_VETH_NS}" || die "ip link add veth ${NODE_VETH_HOST} failed"
    ip link set "${NODE_VETH_NS}" netns "${NODE_NETNS}"
    ip addr add "${REAL_NODE_IP}/${NODE_LINK_PREFIX}" dev "${NODE_VETH_HOST}"
    ip link set "${NODE_VETH_HOST}" up
    ns ip link set lo up
    ns ip addr add "${NODE_NS_IP}/${NODE_LINK_PREFIX}" dev "${NODE_VETH_NS}"
    ns ip link set "${NODE_VETH_NS}" up
    # The bridge is the script's (the CNI plugin reuses it); the gateway address is the pods' route.
    ns ip link add "${NODE_BRIDGE}" type bridge
    ns ip addr add "${NODE_POD_GATEWAY}/24" dev "${NODE_BRIDGE}"
    ns ip link set "${NODE_BRIDGE}" up
    log "network namespace ${NODE_NETNS}: node IP ${REAL_NODE_IP} (${NODE_VETH_HOST}), pods ${NODE_POD_SUBNET} on ${NODE_BRIDGE}"
  fi
  # Namespace-local sysctls: routing between the bridge and the veth, bridged traffic through
  # nftables (Service DNAT and policies for pod-to-pod on the same bridge).
  ns sysctl -qw net.ipv4.ip_forward=1
  ns sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || log "note: net.bridge.bridge-nf-call-iptables not settable in ${NODE_NETNS}"
  ns sysctl -qw net.ipv4.conf.all.rp_filter=0 2>/dev/null || true
  # Service IPs from the namespace itself (kube-proxy's output-hook DNAT needs a route to
  # start from); the pods have their default route to the bridge.
  ns ip route replace "${SERVICE_CIDR}" dev "${NODE_BRIDGE}" src "${NODE_POD_GATEWAY}"
  # The machine reaches the pods through the namespace (more specific than the guard route).
  ip route replace "${NODE_POD_SUBNET}" via "${NODE_NS_IP}" dev "${NODE_VETH_HOST}"
  node_netns_node_traffic_rule
}

# On a real node the kubelet shares the pods' host network namespace, and kube-router admits
# traffic "from the pod's local node" by `-m addrtype --src-type LOCAL`. Here the kubelet (its
# HTTP probes) sits on the machine side of the veth, so its packets arrive from the node IP,
# which is not local to the namespace, and a default-deny ingress policy would drop the probes.
# The same exemption, for exactly that source: packets from the node IP through the veth to the
# pod subnet carry kube-router's "allowed by a policy" mark (0x10000) into its pod chains.
node_netns_node_traffic_rule() {
  [[ "${NETPOL_ENFORCER}" == kube-router-netpol ]] || return 0
  local rule=(PREROUTING -i "${NODE_VETH_NS}" -s "${REAL_NODE_IP}/32" -d "${NODE_POD_SUBNET}"
    -m comment --comment "pake: node (kubelet probes) to local pods, as kube-router's LOCAL-source rule"
    -j MARK --set-xmark 0x10000/0x10000)
  ns iptables -t mangle -C "${rule[@]}" 2>/dev/null || ns iptables -t mangle -A "${rule[@]}"
}

node_netns_down() {
  ip route del "${NODE_POD_SUBNET}" via "${NODE_NS_IP}" 2>/dev/null || true
  if ip netns list 2>/dev/null | grep -qw "^${NODE_NETNS}"; then
    ip netns del "${NODE_NETNS}" || log "note: ip netns del ${NODE_NETNS} failed"
  fi
  ip link del "${NODE_VETH_HOST}" 2>/dev/null || true
}

# ---------------------------------------------------------------------------------------------
# cgroups: the kubelet's pods live under /NODE_CGROUP in every hierarchy (its cgroupRoot)

node_cgroup_dirs() {
  local d
  if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
    echo "/sys/fs/cgroup/${NODE_CGROUP}"
    return
  fi
  for d in /sys/fs/cgroup/*/; do
    [[ -L "${d%/}" ]] && continue
    [[ -f "${d}cgroup.procs" ]] && echo "${d}${NODE_CGROUP}"
  done
}

node_cgroups_up() {
  local d parent
  while read -r d; do
    [[ -d "${d}" ]] && continue
    mkdir "${d}" || die "cannot create cgroup ${d}"
    parent="$(dirname "${d}")"
    if [[ -f "${parent}/cpuset.cpus" ]]; then
      cat "${parent}/cpuset.cpus" >"${d}/cpuset.cpus"
      cat "${parent}/cpuset.mems" >"${d}/cpuset.mems"
    fi
  done < <(node_cgroup_dirs)
  if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
    local c
    for c in cpuset cpu io memory hugetlb pids; do
      echo "+${c}" >"/sys/fs/cgroup/${NODE_CGROUP}/cgroup.subtree_control" 2>/dev/null || true
    done
  fi
}

node_cgroups_down() {
  local d
  while read -r d; do
    [[ -d "${d}" ]] || continue
    # Deepest first; a cgroup with processes left refuses rmdir (then it is reported).
    find "${d}" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    [[ -d "${d}" ]] && log "note: cgroup ${d} still has processes; left in place"
  done < <(node_cgroup_dirs)
  return 0
}

# ---------------------------------------------------------------------------------------------
# configuration files

node_write_containerd_config() {
  mkdir -p "${NODE_STATE}/containerd" "${NODE_STATE}/cni/net.d" "${NODE_STATE}/cni/ipam"
  cat >"${NODE_STATE}/containerd/config.toml" <<EOF
# containerd for the local cluster's real node (scripts/cluster); everything per instance.
version = 2
root = "${NODE_STATE}/containerd/root"
state = "${NODE_STATE}/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "${NODE_SOCK}"

[debug]
  level = "warn"

[plugins."io.containerd.internal.v1.opt"]
  path = "${NODE_STATE}/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  # exec/attach/port-forward: the kubelet (outside the namespace) proxies to this address.
  stream_server_address = "${NODE_NS_IP}"
  stream_server_port = "10010"
  # root here lacks CAP_SYS_RESOURCE: the sandbox's oomScoreAdj -998 would make runc fail.
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_apparmor = true
  max_container_log_line_size = 16384

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        Root = "${NODE_STATE}/runc"
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${NODE_STATE}/cni/net.d"

  # Images tagged 127.0.0.1:${REGISTRY_PORT}/... come from the local registry, through the relay.
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."127.0.0.1:${REGISTRY_PORT}"]
    endpoint = ["http://${REAL_NODE_IP}:${REGISTRY_PORT}"]
EOF
  # Written next to the directory containerd watches, then renamed in: it never sees half a file.
  cat >"${NODE_STATE}/cni/10-pake.conflist.tmp" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "pake-${NODE_TAG}",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "${NODE_BRIDGE}",
      "isGateway": true,
      "hairpinMode": true,
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "dataDir": "${NODE_STATE}/cni/ipam",
        "ranges": [[{ "subnet": "${NODE_POD_SUBNET}", "gateway": "${NODE_POD_GATEWAY}" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF
  mv "${NODE_STATE}/cni/10-pake.conflist.tmp" "${NODE_STATE}/cni/net.d/10-pake.conflist"
}

node_write_kubelet_config() {
  mkdir -p "${NODE_STATE}/kubelet" "${NODE_STATE}/pod-logs"
  : >"${NODE_STATE}/resolv.conf"
  cat >"${NODE_STATE}/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: ${REAL_NODE_IP}
port: 10250
readOnlyPort: 0
healthzBindAddress: ${REAL_NODE_IP}
healthzPort: 10248
tlsCertFile: ${NODE_PKI}/kubelet-serving.crt
tlsPrivateKeyFile: ${NODE_PKI}/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: ${PKI}/ca.crt}
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://${NODE_SOCK}
cgroupDriver: cgroupfs
cgroupRoot: /${NODE_CGROUP}
failCgroupV1: false
failSwapOn: false
makeIPTablesUtilChains: false
clusterDomain: cluster.local
clusterDNS: [${CLUSTER_DNS_IP}]
resolvConf: ${NODE_STATE}/resolv.conf
podLogsDir: ${NODE_STATE}/pod-logs
registerWithTaints:
- {key: ${NODE_TAINT_KEY}, value: real, effect: NoSchedule}
maxPods: 50
serializeImagePulls: false
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
# 100 turns image GC off: the node's images (pause, CoreDNS, the probe) are imported, not
# pullable, so a disk filled by something else must never make the kubelet delete them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
nodeStatusReportFrequency: 10s
nodeStatusUpdateFrequency: 10s
syncFrequency: 10s
fileCheckFrequency: 10s
EOF
}

node_write_kube_proxy_config() {
  cat >"${NODE_STATE}/kube-proxy-config.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
hostnameOverride: ${NODE_NAME}
clientConnection:
  kubeconfig: ${NODE_PKI}/kube-proxy.kubeconfig
clusterCIDR: ${NODE_POD_SUBNET}
bindAddress: ${NODE_NS_IP}
healthzBindAddress: ${NODE_NS_IP}:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: [${NODE_NS_IP}/32]
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
}

# ---------------------------------------------------------------------------------------------
# processes

# node_start NAME BIN [in-netns] ARGS... : like start_component, for a binary outside the
# control plane's cache, optionally inside the node's network namespace (nsenter execs, so
# the recorded PID is the component's own).
node_start() {
  local name="$1" bin="$2" where="$3"; shift 3
  if component_pid "${name}" >/dev/null; then
    return 0
  fi
  printf '\n==== %s starting %s\n' "$(date -u +%FT%TZ)" "${name}" >>"$(logfile "${name}")"
  if [[ "${where}" == netns ]]; then
    setsid nsenter --net="/var/run/netns/${NODE_NETNS}" -- "${bin}" "$@" </dev/null >>"$(logfile "${name}")" 2>&1 9>&- &
  else
    setsid "${bin}" "$@" </dev/null >>"$(logfile "${name}")" 2>&1 9>&- &
  fi
  local pid=$! i
  echo "${pid}" >"$(pidfile "${name}")"
  for ((i = 0; i < 100; i++)); do
    component_pid "${name}" >/dev/null && break
    kill -0 "${pid}" 2>/dev/null || break
    sleep 0.05
  done
  log "started ${name} (pid ${pid}), log $(logfile "${name}")"
}

containerd_healthy() { node_ctr version >/dev/null 2>&1; }
kubelet_healthy() { [[ "$(curl -sS --fail --max-time 3 "http://${REAL_NODE_IP}:10248/healthz")" == ok ]]; }
kube_proxy_healthy() { ns curl -sS --fail --max-time 3 "http://${NODE_NS_IP}:10256/healthz" >/dev/null; }
relay_healthy() { (exec 3<>"/dev/tcp/${REAL_NODE_IP}/$1") 2>/dev/null; }
relay_api_healthy() { relay_healthy "${API_PORT}"; }

real_node_ready() {
  [[ "$(kctl get node "${NODE_NAME}" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}

node_start_relays() {
  # TCP relays on the node IP to the loopback-only API server and registry (the namespace's
  # own loopback is not the machine's). One process per relay; each connection a child.
  node_start relay-apiserver "$(command -v socat)" host \
    "TCP-LISTEN:${API_PORT},bind=${REAL_NODE_IP},reuseaddr,fork" "TCP:${HOST}:${API_PORT}"
  node_start relay-registry "$(command -v socat)" host \
    "TCP-LISTEN:${REGISTRY_PORT},bind=${REAL_NODE_IP},reuseaddr,fork" "TCP:${HOST}:${REGISTRY_PORT}"
  wait_until relay-apiserver 10 relay_api_healthy
}

node_start_containerd() {
  node_start containerd "$(command -v containerd)" netns --config "${NODE_STATE}/containerd/config.toml"
  wait_until containerd 60 containerd_healthy
  node_import_image "${PAUSE_IMAGE}" 65535:65535 "$(node_bin_dir)/pause"
  node_import_image "${COREDNS_IMAGE}" 65532:65532 "$(node_bin_dir)/coredns"
  node_import_image "${PROBE_IMAGE}" 1000:1000 /bin/busybox
}

node_start_kubelet() {
  node_start kubelet "$(node_bin_dir)/kubelet" host \
    --config "${NODE_STATE}/kubelet-config.yaml" \
    --kubeconfig "${NODE_PKI}/kubelet.kubeconfig" \
    --root-dir "${NODE_STATE}/kubelet" \
    --hostname-override "${NODE_NAME}" \
    --node-ip "${REAL_NODE_IP}" \
    --node-labels "${NODE_LABEL}" \
    --v 1
  wait_until kubelet 60 kubelet_healthy
}

node_start_kube_proxy() {
  node_start kube-proxy "$(node_bin_dir)/kube-proxy" netns --config "${NODE_STATE}/kube-proxy-config.yaml" --v 1
  wait_until kube-proxy 60 kube_proxy_healthy
}

# The enforcer's iptables chains exist in the node namespace and it reports healthy.
kube_router_netpol_ready() {
  ns iptables -S FORWARD 2>/dev/null | grep -q -- '-j KUBE-ROUTER-FORWARD' &&
    ns iptables -S KUBE-ROUTER-FORWARD >/dev/null 2>&1 &&
    ns iptables -S KUBE-NWPLCY-DEFAULT >/dev/null 2>&1 &&
    [[ "$(ns curl -sS --max-time 3 "http://127.0.0.1:${NETPOL_HEALTH_PORT}/healthz" 2>/dev/null)" == OK* ]]
}
NETPOL_HEALTH_PORT=20244 # inside the node namespace

node_start_netpol() {
  case "${NETPOL_ENFORCER}" in
    kube-router-netpol) node_start_kube_router_netpol; return ;;
    kube-network-policies) ;;
    *)
      log "note: NetworkPolicy is NOT enforced on this node: ${NETPOL_REASON} (docs/local-cluster.md)"
      return 0
      ;;
  esac
  node_start kube-network-policies "$(node_bin_dir)/kube-network-policies" netns \
    --kubeconfig "${NODE_PKI}/kube-network-policies.kubeconfig" \
    --hostname-override "${NODE_NAME}" \
    --nftables-table "${NODE_NFT_TABLE}" \
    --nfqueue-id 100 \
    --v 1
}

node_start_kube_router_netpol() {
  node_start kube-router-netpol "$(netpol_bin_dir)/kube-router-netpol" netns \
    --kubeconfig "${NODE_PKI}/kube-network-policies.kubeconfig" \
    --hostname-override "${NODE_NAME}" \
    --service-cluster-ip-range "${SERVICE_CIDR}" \
    --health-port "${NETPOL_HEALTH_PORT}" \
    --v 1
  wait_until kube-router-netpol 60 kube_router_netpol_ready
  log "NetworkPolicy enforced on ${NODE_NAME} by kube-router's network policy controller (iptables + ipset)"
}

# Cluster objects the node needs: RBAC for the API server -> kubelet calls, kube-proxy,
# kube-network-policies and CoreDNS; the `kubernetes` Service's endpoint (the API server's
# endpoint reconciler is off: it listens on loopback, which an EndpointSlice cannot hold);
# CoreDNS itself.
node_apply_objects() {
  sed -e "s|NODE_IP|${REAL_NODE_IP}|g" -e "s|API_PORT|${API_PORT}|g" \
    -e "s|CLUSTER_DNS_IP|${CLUSTER_DNS_IP}|g" -e "s|COREDNS_IMAGE|${COREDNS_IMAGE}|g" \
    "${REPO_ROOT}/cluster/node/objects.yaml" |
    kctl apply --server-side --force-conflicts --field-manager pake-cluster -f - >/dev/null
}

coredns_ready() {
  [[ "$(kctl -n kube-system get deployment coredns -o jsonpath='{.status.readyReplicas}' 2>/dev/null)" == 1 ]]
}

node_up() {
  node_enabled || return 0
  node_check_privileges
  mkdir -p "${NODE_STATE}"
  node_make_pki
  node_kubeconfig "${NODE_PKI}/kubelet.kubeconfig" kubelet-client "https://${HOST}:${API_PORT}"
  node_kubeconfig "${NODE_PKI}/kube-proxy.kubeconfig" kube-proxy "https://${REAL_NODE_IP}:${API_PORT}"
  node_kubeconfig "${NODE_PKI}/kube-network-policies.kubeconfig" kube-network-policies "https://${REAL_NODE_IP}:${API_PORT}"
  node_record_netpol_choice
  node_netns_up
  node_cgroups_up
  node_write_containerd_config
  node_write_kubelet_config
  node_write_kube_proxy_config
  node_start_relays
  node_apply_objects
  node_start_containerd
  node_start_kubelet
  node_start_kube_proxy
  node_start_netpol
}

# After the control plane's own readiness: the node Ready and CoreDNS answering.
node_wait_ready() {
  node_enabled || return 0
  local deadline=$((SECONDS + 120))
  until real_node_ready && coredns_ready; do
    if ((SECONDS >= deadline)); then
      kctl get node "${NODE_NAME}" >&2 || true
      kctl -n kube-system get pods -o wide >&2 || true
      die "real node ${NODE_NAME} (or CoreDNS on it) not Ready after 120s (logs: $(logfile kubelet), $(logfile containerd))"
    fi
    component_pid kubelet >/dev/null || die "kubelet exited (log: $(logfile kubelet))"
    sleep 0.5
  done
}

node_all_running() {
  node_enabled || return 0
  local c
  node_load_netpol_choice || return 1
  for c in "${NODE_COMPONENTS[@]}"; do
    netpol_not_chosen "${c}" && continue
    component_pid "${c}" >/dev/null || return 1
  done
  real_node_ready
}

# Stop the pods first (through containerd: the kubelet may already be gone), then the
# components, then remove what node_up created on the machine.
node_down() {
  [[ -d "${NODE_STATE}" ]] || { node_netns_down; node_cgroups_down; return 0; }
  stop_component kube-router-netpol
  stop_component kube-network-policies
  stop_component kube-proxy
  stop_component kubelet
  node_remove_containers
  stop_component containerd
  stop_component relay-registry
  stop_component relay-apiserver
  node_unmount_all
  node_netns_down
  node_cgroups_down
  # The kubelet's symlinks into our pod log dir.
  find /var/log/containers -maxdepth 1 -type l -lname "${NODE_STATE}/*" -delete 2>/dev/null || true
}

node_remove_containers() {
  component_pid containerd >/dev/null || return 0
  local ids id netns i
  ids="$(node_ctr tasks ls -q 2>/dev/null || true)"
  for id in ${ids}; do node_ctr tasks kill --signal SIGKILL "${id}" >/dev/null 2>&1 || true; done
  for ((i = 0; i < 40; i++)); do
    [[ -z "$(node_ctr tasks ls 2>/dev/null | awk 'NR > 1 && $3 == "RUNNING"')" ]] && break
    sleep 0.25
  done
  for id in ${ids}; do node_ctr tasks delete --force "${id}" >/dev/null 2>&1 || true; done
  # The sandboxes' network namespaces (bind mounts under /var/run/netns) named in their specs.
  for id in $(node_ctr containers ls -q 2>/dev/null || true); do
    netns="$(node_ctr containers info "${id}" 2>/dev/null | jq -r '.Spec.linux.namespaces[]? | select(.type == "network") | .path // empty' 2>/dev/null || true)"
    if [[ "${netns}" == /var/run/netns/cni-* || "${netns}" == /run/netns/cni-* ]]; then
      umount "${netns}" 2>/dev/null || true
      rm -f "${netns}"
    fi
    node_ctr containers delete "${id}" >/dev/null 2>&1 || true
  done
}

# Every mount below the node's state dir (pod volumes, overlay rootfs, shm), deepest first.
node_unmount_all() {
  local m
  while read -r m; do
    umount "${m}" 2>/dev/null || umount -l "${m}" 2>/dev/null || log "note: could not unmount ${m}"
  done < <(awk -v p="${NODE_STATE}/" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
}

node_status_lines() {
  node_enabled || { printf '%-24s %s\n' "real node" "off (PAKE_CLUSTER_REAL_NODE=0)"; return 0; }
  local c pid rc=0
  node_load_netpol_choice || true
  for c in "${NODE_COMPONENTS[@]}"; do
    if netpol_not_chosen "${c}"; then
      printf '%-24s %-8s %-8s %s\n' "${c}" "n/a" - "not used: ${NETPOL_REASON:-not started yet}"
      continue
    fi
    if pid="$(component_pid "${c}")"; then
      printf '%-24s %-8s %-8s %s\n' "${c}" running "${pid}" "$(logfile "${c}")"
    else
      printf '%-24s %-8s %-8s %s\n' "${c}" stopped - "$(logfile "${c}")"
      rc=1
    fi
  done
  node_netpol_status_line || rc=1
  return "${rc}"
}

# "enforced" only while the chosen enforcer runs and (kube-router) its chains are in place.
node_netpol_status_line() {
  local what="network-policy"
  if [[ -z "${NETPOL_ENFORCER}" ]]; then
    printf '%-24s %-8s %-8s %s\n' "${what}" "off" - "NOT enforced: ${NETPOL_REASON:-no enforcer chosen (run up)}"
    return 0
  fi
  if ! component_pid "${NETPOL_ENFORCER}" >/dev/null; then
    printf '%-24s %-8s %-8s %s\n' "${what}" "off" - "NOT enforced: ${NETPOL_ENFORCER} is not running"
    return 1
  fi
  if [[ "${NETPOL_ENFORCER}" == kube-router-netpol ]] && ! kube_router_netpol_ready; then
    printf '%-24s %-8s %-8s %s\n' "${what}" "off" - "NOT enforced: kube-router-netpol has no chains in ${NODE_NETNS} yet / unhealthy"
    return 1
  fi
  printf '%-24s %-8s %-8s %s\n' "${what}" "enforced" - "by ${NETPOL_ENFORCER} (${NETPOL_REASON})"
}
