#!/usr/bin/env bash
# Smoke test of a running `scripts/cluster up`: nodes Ready, a Deployment becomes available
# with a Service EndpointSlice, Pod Security rejects a privileged pod, deployer RBAC holds.
# Uses namespace pake-smoke (deleted at the end). Exit 0 only if every check passed.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KUBECONFIG="$("${REPO_ROOT}/scripts/cluster" env kubeconfig)"
export KUBECONFIG
BIN="$("${REPO_ROOT}/scripts/cluster" env | sed -n 's/^export PAKE_CLUSTER_BIN_DIR=//p')"
K="${BIN}/kubectl"
[[ -x "${K}" ]] || K=kubectl
NS=pake-smoke
NS_RESTRICTED=pake-smoke-restricted
pass=0 fail=0

check() {
  local what="$1"; shift
  if "$@"; then
    echo "ok   ${what}"; pass=$((pass + 1))
  else
    echo "FAIL ${what}"; fail=$((fail + 1))
  fi
}

cleanup() { "${K}" delete namespace "${NS}" "${NS_RESTRICTED}" --ignore-not-found --wait=false >/dev/null 2>&1 || true; }
trap cleanup EXIT

# The three kwok nodes (label type=kwok); the real node pake-node-0, when there is one, too.
nodes_ready() {
  [[ "$("${K}" get nodes -l type=kwok -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c '^True$')" == 3 ]] || return 1
  if "${K}" get node pake-node-0 >/dev/null 2>&1; then
    [[ "$("${K}" get node pake-node-0 -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]
  fi
}

deployment_available() {
  "${K}" create namespace "${NS}" --dry-run=client -o yaml | "${K}" apply -f - >/dev/null
  "${K}" -n "${NS}" apply -f - >/dev/null <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: example.invalid/app:1
        ports: [{containerPort: 8080, name: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http, name: http}]
EOF
  "${K}" -n "${NS}" rollout status deploy/web --timeout=60s >/dev/null &&
    [[ "$("${K}" -n "${NS}" get deploy web -o jsonpath='{.status.availableReplicas}')" == 3 ]]
}

endpointslice_ready() {
  local i n
  for ((i = 0; i < 60; i++)); do
    n="$("${K}" -n "${NS}" get endpointslices -l kubernetes.io/service-name=web \
      -o jsonpath='{range .items[*].endpoints[*]}{.conditions.ready}{"\n"}{end}' | grep -c '^true$' || true)"
    [[ "${n}" == 3 ]] && return 0
    sleep 0.5
  done
  return 1
}

privileged_pod_rejected() {
  "${K}" create namespace "${NS_RESTRICTED}" --dry-run=client -o yaml | "${K}" apply -f - >/dev/null
  "${K}" label namespace "${NS_RESTRICTED}" pod-security.kubernetes.io/enforce=restricted --overwrite >/dev/null
  local out
  if out="$("${K}" -n "${NS_RESTRICTED}" run priv --image=example.invalid/app:1 --restart=Never \
    --overrides='{"spec":{"containers":[{"name":"priv","image":"example.invalid/app:1","securityContext":{"privileged":true}}]}}' 2>&1)"; then
    return 1
  fi
  grep -q 'violates PodSecurity "restricted' <<<"${out}"
}

deployer_cannot_read_kube_system_secrets() { [[ "$("${K}" --context pake-local-deployer auth can-i get secrets -n kube-system 2>/dev/null || true)" == no ]]; }
deployer_can_deploy_to_pake_dev() { [[ "$("${K}" --context pake-local-deployer auth can-i create deployments -n pake-dev 2>/dev/null)" == yes ]]; }
deployer_get_secrets_forbidden() { ! "${K}" --context pake-local-deployer get secrets -n kube-system >/dev/null 2>&1; }

check "3 kwok nodes (and the real node, if any) Ready" nodes_ready
check "Deployment web: availableReplicas == 3" deployment_available
check "EndpointSlice for Service web: 3 ready endpoints" endpointslice_ready
check "restricted namespace rejects a privileged pod" privileged_pod_rejected
check "deployer: auth can-i get secrets -n kube-system = no" deployer_cannot_read_kube_system_secrets
check "deployer: get secrets -n kube-system is Forbidden" deployer_get_secrets_forbidden
check "deployer: auth can-i create deployments -n pake-dev = yes" deployer_can_deploy_to_pake_dev
echo "${pass} passed, ${fail} failed"
((fail == 0))
