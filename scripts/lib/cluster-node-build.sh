# shellcheck shell=bash
# Build helpers for the local cluster's real node (scripts/cluster): kubelet and kube-proxy
# from the same pinned k8s.io/kubernetes as the control plane (wrapper module cluster/node),
# the pause program (cluster/node/pause), CoreDNS with only the plugins the node's Corefile
# uses (cluster/coredns) and kube-network-policies (cluster/netpol). Binaries go to their
# own versioned cache directory, so adding or changing the node never rebuilds the control plane.
#
# Sourced by scripts/cluster after scripts/lib/cluster-build.sh (uses K8S_VERSION, _k8s_ldflags,
# _go_build, cluster_cache_root).

COREDNS_VERSION="v1.14.7"
NETPOL_VERSION="v0.8.0"

# kube-network-policies only where the kernel can run it (node_probe_nft_queue).
node_binaries() {
  echo kubelet kube-proxy pause coredns
  netpol_supported && echo kube-network-policies
  return 0
}

node_version_key() {
  local h
  h="$(
    {
      printf '%s\n' "${K8S_VERSION}" "${COREDNS_VERSION}" "${NETPOL_VERSION}" "$(_k8s_ldflags)" \
        "CGO_ENABLED=0" "tags=selinux,notest" "trimpath"
      cat "${REPO_ROOT}/cluster/node/go.mod" "${REPO_ROOT}/cluster/node/go.sum" \
        "${REPO_ROOT}/cluster/node/pause/main.go" \
        "${REPO_ROOT}/cluster/coredns/go.mod" "${REPO_ROOT}/cluster/coredns/go.sum" "${REPO_ROOT}/cluster/coredns/main.go" \
        "${REPO_ROOT}/cluster/netpol/go.mod" "${REPO_ROOT}/cluster/netpol/go.sum" "${REPO_ROOT}/cluster/netpol/main.go"
    } | sha256sum | cut -c1-12
  )"
  printf 'node-k8s-%s_coredns-%s_netpol-%s_%s' "${K8S_VERSION}" "${COREDNS_VERSION}" "${NETPOL_VERSION}" "${h}"
}

node_bin_dir() { printf '%s/%s/bin' "$(cluster_cache_root)" "$(node_version_key)"; }

node_binaries_present() {
  local dir b
  dir="$(node_bin_dir)"
  [[ -f "${dir}/.complete" ]] || return 1
  for b in $(node_binaries); do
    [[ -x "${dir}/${b}" ]] || return 1
  done
}

node_build() {
  local force="${1:-}" dir tmp start end b
  command -v go >/dev/null 2>&1 || { echo "cluster: the go toolchain is required to build the node" >&2; return 1; }
  dir="$(node_bin_dir)"
  if [[ "${force}" != "--force" ]] && node_binaries_present; then
    echo "cluster: node binaries cached in ${dir}" >&2
    return 0
  fi
  mkdir -p "$(dirname "${dir}")"
  tmp="$(mktemp -d "$(dirname "${dir}")/bin.tmp.XXXXXX")"
  start=$(date +%s)
  echo "cluster: building the real node (kubelet, kube-proxy ${K8S_VERSION}, CoreDNS ${COREDNS_VERSION}, kube-network-policies ${NETPOL_VERSION}) into ${dir}" >&2
  echo "cluster: [$(date +%T)] building kubelet kube-proxy pause" >&2
  _go_build node "${tmp}" "$(_k8s_ldflags)" \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy ./pause || { rm -rf "${tmp}"; return 1; }
  echo "cluster: [$(date +%T)] building coredns" >&2
  _go_build coredns "${tmp}" "-s -w -X github.com/coredns/coredns/coremain.GitCommit=${COREDNS_VERSION}" . || { rm -rf "${tmp}"; return 1; }
  if netpol_supported; then
    echo "cluster: [$(date +%T)] building kube-network-policies" >&2
    _go_build netpol "${tmp}" "-s -w" . || { rm -rf "${tmp}"; return 1; }
    mv "${tmp}/netpol" "${tmp}/kube-network-policies"
  else
    echo "cluster: not building kube-network-policies: this kernel cannot run it (${NFT_QUEUE_ERROR})" >&2
  fi
  for b in $(node_binaries); do
    [[ -x "${tmp}/${b}" ]] || { echo "cluster: node build did not produce ${b}" >&2; ls -la "${tmp}" >&2; rm -rf "${tmp}"; return 1; }
  done
  end=$(date +%s)
  echo "build_seconds=$((end - start))" >"${tmp}/.complete"
  echo "go=$(go env GOVERSION)" >>"${tmp}/.complete"
  rm -rf "${dir}"
  mv "${tmp}" "${dir}"
  echo "cluster: [$(date +%T)] node build finished in $((end - start))s" >&2
}

# ---------------------------------------------------------------------------------------------
# The NetworkPolicy enforcer for kernels without nftables queue support: kube-router's network
# policy controller alone (iptables + ipset), wrapper module cluster/kube-router. Its own cache
# directory and key, so adding or changing it never rebuilds kubelet, kube-proxy or CoreDNS.

KUBE_ROUTER_VERSION="v2.1.0"

netpol_version_key() {
  local h
  h="$(
    {
      printf '%s\n' "${KUBE_ROUTER_VERSION}" "-s -w" "CGO_ENABLED=0" "tags=selinux,notest" "trimpath"
      cat "${REPO_ROOT}/cluster/kube-router/go.mod" "${REPO_ROOT}/cluster/kube-router/go.sum" \
        "${REPO_ROOT}/cluster/kube-router/main.go"
    } | sha256sum | cut -c1-12
  )"
  printf 'netpol-kube-router-%s_%s' "${KUBE_ROUTER_VERSION}" "${h}"
}

netpol_bin_dir() { printf '%s/%s/bin' "$(cluster_cache_root)" "$(netpol_version_key)"; }

netpol_binary_present() {
  [[ -f "$(netpol_bin_dir)/.complete" && -x "$(netpol_bin_dir)/kube-router-netpol" ]]
}

netpol_build() {
  local force="${1:-}" dir tmp start end
  command -v go >/dev/null 2>&1 || { echo "cluster: the go toolchain is required to build the NetworkPolicy enforcer" >&2; return 1; }
  dir="$(netpol_bin_dir)"
  if [[ "${force}" != "--force" ]] && netpol_binary_present; then
    echo "cluster: NetworkPolicy enforcer cached in ${dir}" >&2
    return 0
  fi
  mkdir -p "$(dirname "${dir}")"
  tmp="$(mktemp -d "$(dirname "${dir}")/bin.tmp.XXXXXX")"
  start=$(date +%s)
  echo "cluster: [$(date +%T)] building the NetworkPolicy enforcer (kube-router ${KUBE_ROUTER_VERSION} network policy controller) into ${dir}" >&2
  _go_build kube-router "${tmp}" "-s -w" . || { rm -rf "${tmp}"; return 1; }
  mv "${tmp}/kube-router" "${tmp}/kube-router-netpol"
  end=$(date +%s)
  echo "build_seconds=$((end - start))" >"${tmp}/.complete"
  echo "go=$(go env GOVERSION)" >>"${tmp}/.complete"
  rm -rf "${dir}"
  mv "${tmp}" "${dir}"
  echo "cluster: [$(date +%T)] NetworkPolicy enforcer build finished in $((end - start))s" >&2
}

# Build the enforcer node_choose_netpol picked, if it has a build of its own.
node_build_netpol() {
  [[ "${NETPOL_ENFORCER}" == kube-router-netpol ]] || return 0
  netpol_build "$@"
}
