# shellcheck shell=bash
# The External Secrets Operator (ESO) for scripts/cluster: its controller built from the pinned
# wrapper module cluster/eso with only the providers the tests use, its CRDs applied server-side,
# the controller run as a plain process on 127.0.0.1. Binaries go to their own versioned cache
# directory, so adding or changing ESO never rebuilds the control plane or the node.
#
# Sourced by scripts/cluster after scripts/lib/cluster-build.sh (uses _go_build's conventions,
# cluster_cache_root) and before its commands run (uses log, die, kctl, pidfile, logfile,
# component_pid, stop_component, wait_until, sign_cert, write_kubeconfig, PKI, HOST).

ESO_VERSION="v0.16.2"
ESO_MODULE="github.com/external-secrets/external-secrets"
# 1 (default): build and run ESO; 0: leave it out (e.g. a CI job that does not test it).
ESO_ENABLED="${PAKE_CLUSTER_ESO:-1}"
ESO_METRICS_PORT="${PAKE_CLUSTER_ESO_PORT:-10380}"
ESO_COMPONENT=external-secrets

eso_enabled() { [[ "${ESO_ENABLED}" == 1 ]]; }

eso_validate_switch() {
  [[ "${ESO_ENABLED}" == 0 || "${ESO_ENABLED}" == 1 ]] || die "PAKE_CLUSTER_ESO must be 0 or 1 (got '${ESO_ENABLED}')"
}

eso_version_key() {
  local h
  h="$(
    {
      printf '%s\n' "${ESO_VERSION}" "-s -w" "CGO_ENABLED=0" "trimpath"
      cat "${REPO_ROOT}/cluster/eso/go.mod" "${REPO_ROOT}/cluster/eso/go.sum" "${REPO_ROOT}/cluster/eso/main.go" \
        "${REPO_ROOT}/cluster/eso/overlay/provider-register.go" "${REPO_ROOT}/cluster/eso/overlay/generator-register.go"
    } | sha256sum | cut -c1-12
  )"
  printf 'eso-%s_%s' "${ESO_VERSION}" "${h}"
}

eso_bin_dir() { printf '%s/%s/bin' "$(cluster_cache_root)" "$(eso_version_key)"; }

eso_binaries_present() {
  local dir
  dir="$(eso_bin_dir)"
  [[ -f "${dir}/.complete" && -x "${dir}/${ESO_COMPONENT}" && -s "${dir}/crds.yaml" ]]
}

# ESO v0.16.2 links all 36 providers through pkg/provider/register (and every generator through
# pkg/generator/register) and has no build tags to select them; go build -overlay may not replace
# files below GOMODCACHE. So: the module as go.sum pins it (go mod download verifies the hash),
# copied to a build directory with those two files swapped for cluster/eso/overlay/, and built
# through a `replace` to that copy. Everything else is upstream's code.
eso_build() {
  local force="${1:-}" dir tmp src start end moddir
  command -v go >/dev/null 2>&1 || { echo "cluster: the go toolchain is required to build ESO" >&2; return 1; }
  dir="$(eso_bin_dir)"
  if [[ "${force}" != "--force" ]] && eso_binaries_present; then
    echo "cluster: ESO binaries cached in ${dir}" >&2
    return 0
  fi
  mkdir -p "$(dirname "${dir}")"
  tmp="$(mktemp -d "$(dirname "${dir}")/eso.tmp.XXXXXX")"
  start=$(date +%s)
  echo "cluster: [$(date +%T)] building the External Secrets Operator ${ESO_VERSION} (providers: kubernetes, fake) into ${dir}" >&2
  moddir="$(
    cd "${REPO_ROOT}/cluster/eso" &&
      GOWORK=off GOFLAGS="-mod=readonly" GOTOOLCHAIN=local go mod download -json "${ESO_MODULE}" |
      sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
  )" || true
  [[ -n "${moddir}" && -f "${moddir}/go.mod" ]] || { echo "cluster: go mod download ${ESO_MODULE}@${ESO_VERSION} failed" >&2; rm -rf "${tmp}"; return 1; }
  src="${tmp}/src"
  mkdir -p "${src}/external-secrets"
  cp -r "${moddir}"/{apis,cmd,pkg,go.mod,go.sum,LICENSE} "${src}/external-secrets/"
  chmod -R u+w "${src}"
  cp "${REPO_ROOT}/cluster/eso/overlay/provider-register.go" "${src}/external-secrets/pkg/provider/register/register.go"
  cp "${REPO_ROOT}/cluster/eso/overlay/generator-register.go" "${src}/external-secrets/pkg/generator/register/register.go"
  cp "${REPO_ROOT}/cluster/eso/go.sum" "${REPO_ROOT}/cluster/eso/main.go" "${src}/"
  { cat "${REPO_ROOT}/cluster/eso/go.mod"; echo "replace ${ESO_MODULE} => ./external-secrets"; } >"${src}/go.mod"
  (
    cd "${src}" || exit 1
    export GOWORK=off CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" GOTOOLCHAIN=local
    go build -trimpath -ldflags "-s -w" -o "${tmp}/${ESO_COMPONENT}" .
  ) || { rm -rf "${tmp}"; return 1; }
  cp "${moddir}/deploy/crds/bundle.yaml" "${tmp}/crds.yaml"
  rm -rf "${src}"
  end=$(date +%s)
  echo "build_seconds=$((end - start))" >"${tmp}/.complete"
  echo "go=$(go env GOVERSION)" >>"${tmp}/.complete"
  rm -rf "${dir}"
  mkdir -p "$(dirname "${dir}")"
  mv "${tmp}" "${dir}"
  echo "cluster: [$(date +%T)] ESO build finished in $((end - start))s" >&2
}

# ESO's own client identity. It runs with cluster-admin rights (group system:masters), as its
# Helm chart's ClusterRole is nearly that broad (every Secret, token requests for any
# ServiceAccount); a separate user makes its requests visible as its own in audit logs.
eso_make_pki() {
  [[ -f "${PKI}/external-secrets.kubeconfig" ]] && return 0
  sign_cert external-secrets "/O=system:masters/CN=external-secrets" "${client_ext}"
  rm -f "${PKI}"/*.srl
  write_kubeconfig "${PKI}/external-secrets.kubeconfig" external-secrets external-secrets default
}

eso_healthy() { curl -sS --fail --max-time 3 "http://${HOST}:${ESO_METRICS_PORT}/metrics" >/dev/null; }

eso_crds_established() {
  local n
  n="$(kctl get crd -l external-secrets.io/component=controller \
    -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Established")].status}{"\n"}{end}' 2>/dev/null |
    grep -c True)" || return 1
  ((n > 0)) && kctl get --raw /apis/external-secrets.io/v1 >/dev/null 2>&1
}

eso_apply_crds() {
  kctl apply --server-side --force-conflicts --field-manager pake-cluster -f "$(eso_bin_dir)/crds.yaml" >/dev/null
  local deadline=$((SECONDS + 60))
  until eso_crds_established; do
    ((SECONDS < deadline)) || die "ESO's CRDs not Established after 60s"
    sleep 0.5
  done
}

eso_start() {
  local bin
  bin="$(eso_bin_dir)/${ESO_COMPONENT}"
  if component_pid "${ESO_COMPONENT}" >/dev/null; then
    return 0
  fi
  printf '\n==== %s starting %s\n' "$(date -u +%FT%TZ)" "${ESO_COMPONENT}" >>"$(logfile "${ESO_COMPONENT}")"
  # controller-runtime reads KUBECONFIG; the metrics listener is the only port and is loopback.
  KUBECONFIG="${PKI}/external-secrets.kubeconfig" setsid "${bin}" \
    --metrics-addr "${HOST}:${ESO_METRICS_PORT}" \
    --enable-leader-election=false \
    --concurrent 2 \
    --loglevel info \
    --zap-time-encoding iso8601 \
    </dev/null >>"$(logfile "${ESO_COMPONENT}")" 2>&1 9>&- &
  local pid=$! i
  echo "${pid}" >"$(pidfile "${ESO_COMPONENT}")"
  for ((i = 0; i < 100; i++)); do
    component_pid "${ESO_COMPONENT}" >/dev/null && break
    kill -0 "${pid}" 2>/dev/null || break
    sleep 0.05
  done
  log "started ${ESO_COMPONENT} (pid ${pid}), log $(logfile "${ESO_COMPONENT}")"
  wait_until "${ESO_COMPONENT}" 60 eso_healthy
}

eso_up() {
  eso_enabled || return 0
  eso_make_pki
  eso_apply_crds
  eso_start
  log "External Secrets Operator ${ESO_VERSION} running (external-secrets.io/v1 served; providers kubernetes, fake)"
}

eso_all_running() {
  eso_enabled || return 0
  component_pid "${ESO_COMPONENT}" >/dev/null
}

eso_down() { stop_component "${ESO_COMPONENT}"; }

eso_status_line() {
  eso_enabled || { printf '%-24s %s\n' "${ESO_COMPONENT}" "off (PAKE_CLUSTER_ESO=0)"; return 0; }
  local pid
  if pid="$(component_pid "${ESO_COMPONENT}")"; then
    printf '%-24s %-8s %-8s %s\n' "${ESO_COMPONENT}" running "${pid}" "$(logfile "${ESO_COMPONENT}")"
  else
    printf '%-24s %-8s %-8s %s\n' "${ESO_COMPONENT}" stopped - "$(logfile "${ESO_COMPONENT}")"
    return 1
  fi
}
