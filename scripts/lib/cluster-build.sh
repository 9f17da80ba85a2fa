# shellcheck shell=bash
# Build helpers for scripts/cluster: builds the pinned control-plane binaries from the
# wrapper Go modules under cluster/ into a versioned cache directory.
#
# Sourced by scripts/cluster; expects REPO_ROOT to be set.

K8S_VERSION="v1.36.3"
ETCD_VERSION="v3.6.16"
KWOK_VERSION="v0.8.0"

# Binaries that must exist in the cache for it to count as complete.
CLUSTER_BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)

_k8s_ldflags() {
  local v="${K8S_VERSION}" major minor flags="-s -w" pkg
  major="${v#v}"; major="${major%%.*}"
  minor="${v#v"${major}".}"; minor="${minor%%.*}"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X ${pkg}.gitVersion=${v}"
    flags+=" -X ${pkg}.gitMajor=${major}"
    flags+=" -X ${pkg}.gitMinor=${minor}"
    flags+=" -X ${pkg}.gitTreeState=clean"
  done
  printf '%s' "${flags}"
}

_kwok_ldflags() {
  printf '%s' "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION}"
}

# The cache key covers the pinned versions, the build flags and the exact module graph
# (go.mod + go.sum of every wrapper module), so any change to them rebuilds. The Go toolchain
# version is recorded in bin/.complete but is not part of the key: a warm cache must not be
# invalidated because `go` is missing from PATH or was patch-upgraded.
cluster_version_key() {
  local h
  h="$(
    {
      printf '%s\n' "${K8S_VERSION}" "${ETCD_VERSION}" "${KWOK_VERSION}" "$(_k8s_ldflags)" "$(_kwok_ldflags)" \
        "CGO_ENABLED=0" "tags=selinux,notest" "trimpath"
      cat "${REPO_ROOT}/cluster/kubernetes/go.mod" "${REPO_ROOT}/cluster/kubernetes/go.sum" \
        "${REPO_ROOT}/cluster/etcd/go.mod" "${REPO_ROOT}/cluster/etcd/go.sum" \
        "${REPO_ROOT}/cluster/kwok/go.mod" "${REPO_ROOT}/cluster/kwok/go.sum"
    } | sha256sum | cut -c1-12
  )"
  printf 'k8s-%s_etcd-%s_kwok-%s_%s' "${K8S_VERSION}" "${ETCD_VERSION}" "${KWOK_VERSION}" "${h}"
}

cluster_cache_root() { printf '%s' "${PAKE_CACHE_DIR:-$HOME/.cache/pake}/cluster"; }
cluster_bin_dir() { printf '%s/%s/bin' "$(cluster_cache_root)" "$(cluster_version_key)"; }

cluster_binaries_present() {
  local dir b
  dir="$(cluster_bin_dir)"
  [[ -f "${dir}/.complete" ]] || return 1
  for b in "${CLUSTER_BINARIES[@]}"; do
    [[ -x "${dir}/${b}" ]] || return 1
  done
}

# _go_build MODULE_DIR OUTDIR LDFLAGS PKG...
_go_build() {
  local moddir="$1" out="$2" ldflags="$3"; shift 3
  (
    cd "${REPO_ROOT}/cluster/${moddir}" || exit 1
    export GOWORK=off CGO_ENABLED=0
    # -mod=readonly: the committed go.mod/go.sum are the whole truth; a build never edits them.
    export GOFLAGS="-mod=readonly -buildvcs=false"
    # The go directive of every module involved is go1.26.0, so the installed go1.26.8 suffices;
    # never let the go command try to download another toolchain.
    export GOTOOLCHAIN=local
    go build -trimpath -tags selinux,notest -ldflags "${ldflags}" -o "${out}/" "$@"
  )
}

# Build all binaries (unless already cached). Progress goes to stderr.
cluster_build() {
  local force="${1:-}" dir tmp start end
  command -v go >/dev/null 2>&1 || { echo "cluster: the go toolchain is required to build the control plane" >&2; return 1; }
  dir="$(cluster_bin_dir)"
  if [[ "${force}" != "--force" ]] && cluster_binaries_present; then
    echo "cluster: binaries cached in ${dir}" >&2
    return 0
  fi
  mkdir -p "$(dirname "${dir}")"
  tmp="$(mktemp -d "$(dirname "${dir}")/bin.tmp.XXXXXX")"
  start=$(date +%s)
  echo "cluster: building control plane (k8s ${K8S_VERSION}, etcd ${ETCD_VERSION}, kwok ${KWOK_VERSION}) into ${dir}" >&2
  echo "cluster: a cold build takes a long time on 2 cores (see docs/local-cluster.md)" >&2
  echo "cluster: [$(date +%T)] building etcd" >&2
  _go_build etcd "${tmp}" "-s -w" go.etcd.io/etcd/server/v3 || { rm -rf "${tmp}"; return 1; }
  mv "${tmp}/v3" "${tmp}/etcd" 2>/dev/null || mv "${tmp}/server" "${tmp}/etcd" 2>/dev/null || true
  echo "cluster: [$(date +%T)] building kwok" >&2
  _go_build kwok "${tmp}" "$(_kwok_ldflags)" sigs.k8s.io/kwok/cmd/kwok || { rm -rf "${tmp}"; return 1; }
  echo "cluster: [$(date +%T)] building kube-apiserver kube-controller-manager kube-scheduler kubectl" >&2
  _go_build kubernetes "${tmp}" "$(_k8s_ldflags)" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl || { rm -rf "${tmp}"; return 1; }
  local b
  for b in "${CLUSTER_BINARIES[@]}"; do
    [[ -x "${tmp}/${b}" ]] || { echo "cluster: build did not produce ${b}" >&2; ls -la "${tmp}" >&2; rm -rf "${tmp}"; return 1; }
  done
  end=$(date +%s)
  echo "build_seconds=$((end - start))" >"${tmp}/.complete"
  echo "go=$(go env GOVERSION)" >>"${tmp}/.complete"
  rm -rf "${dir}"
  mv "${tmp}" "${dir}"
  echo "cluster: [$(date +%T)] build finished in $((end - start))s" >&2
}
