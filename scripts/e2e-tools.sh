#!/usr/bin/env bash
# Builds the real components that autocm's end-to-end tests (tests/e2e) run against, using only
# package registries (Go module proxy, Debian apt): our machines have no Docker and no internet, so
# kind/k3d and release tarballs are out. See docs/e2e.md.
#
# Everything lands in versioned directories under ~/.cache/autocm (override: AUTOCM_CACHE) and
# ~/.cache/autocm/bin holds symlinks to the current versions plus env.sh. A step whose output
# already exists is skipped, so a warm machine pays only a few seconds.
#
# Usage:
#   scripts/e2e-tools.sh                   build what is missing (what `make e2e-tools` runs)
#   scripts/e2e-tools.sh update-modules    regenerate scripts/e2e/*/go.{mod,sum} after a version bump
#
# Environment: AUTOCM_CACHE (cache root), AUTOCM_GO_JOBS (go build -p, default 2), and the usual
# GOMODCACHE/GOCACHE/GOPROXY, which are left alone.
set -euo pipefail

# Versions. The Kubernetes and etcd ones must match scripts/e2e/*/go.mod (checked below); run
# `update-modules` after changing them.
K8S_VERSION=v1.34.4      # newest v1.34 patch on the Go proxy when this was written
ETCD_VERSION=v3.6.4      # the etcd that k8s.io/kubernetes v1.34.4's go.mod pins
KWOK_VERSION=v0.7.0      # plain `go install` works (no replace directives)
HELM_VERSION=v3.19.5     # built against the v0.34 Kubernetes libraries, like our control plane
# Kubeflow's training operator (PyTorchJob controller): plain `go install` works. Its CRD ships in the
# module; it is copied next to the binary so the tests install the real schema, not a stand-in.
TRAINING_OPERATOR_VERSION=v1.8.1
# dashboard-linter has no tagged releases: a main-branch pseudo-version the Go proxy serves. Its
# checksums come from scripts/e2e/dashboard-linter/go.sum (the checksum database is not served for it).
DASHBOARD_LINTER_VERSION=v0.0.0-20241224134444-1765d94aec4a

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODULES="$REPO/scripts/e2e"
CACHE=${AUTOCM_CACHE:-$HOME/.cache/autocm}
BIN="$CACHE/bin"
GO_JOBS=${AUTOCM_GO_JOBS:-2}

# Reproducible, small, static binaries; never let `go` fetch another toolchain.
export GOTOOLCHAIN=local GOFLAGS="-trimpath -buildvcs=false" CGO_ENABLED=0

die() { echo "e2e-tools: ERROR: $*" >&2; exit 1; }
log() { echo "e2e-tools: $*"; }

need_go() {
  command -v go >/dev/null || die "Go is not installed (need >= 1.24 for Kubernetes 1.34)"
  local v
  v=$(go env GOVERSION | sed 's/^go//')
  [[ "$(printf '%s\n1.24\n' "$v" | sort -V | head -1)" == "1.24" ]] || die "Go $v is too old (need >= 1.24)"
}

# Fails loudly when a wrapper go.mod does not pin the version this script advertises.
check_pin() {  # module-dir module version
  local got
  # Read go.mod directly: `go list -m` would need the module cache or the proxy.
  got=$(awk -v m="$2" '$1 == "require" && $2 == m {print $3} $1 == m && $2 ~ /^v/ {print $2}' \
    "$MODULES/$1/go.mod" | head -1)
  [[ "$got" == "$3" ]] || die "scripts/e2e/$1/go.mod pins $2 $got, script wants $3: run '$0 update-modules'"
}

# Atomic install: build into DIR.tmp, rename to DIR only when every binary is there, so an
# interrupted build is never mistaken for a cached one.
begin() { rm -rf "$1.tmp"; mkdir -p "$1.tmp"; }
commit() { rm -rf "$1"; mv "$1.tmp" "$1"; }

has_all() {  # dir binary...
  local dir=$1; shift
  local b
  for b in "$@"; do [[ -x "$dir/$b" ]] || return 1; done
}

link() {  # target name
  ln -sfn "$1" "$BIN/$2"
}

report() {  # name version state
  printf 'e2e-tools: %-24s %-16s %s\n' "$1" "$2" "$3"
}

build_kubernetes() {
  local dest="$CACHE/k8s-$K8S_VERSION" state=cached t0=$SECONDS
  local bins=(kube-apiserver kube-controller-manager kube-scheduler)
  if ! has_all "$dest" "${bins[@]}"; then
    need_go
    check_pin kubernetes k8s.io/kubernetes "$K8S_VERSION"
    local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
    local ld="-s -w" pkg
    # hack/lib/version.sh sets these; without them /version says v0.0.0 and Helm's checks fail.
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
      ld+=" -X $pkg.gitTreeState=clean"
    done
    log "building Kubernetes $K8S_VERSION (15-30 min cold on 2 cores) ..."
    begin "$dest"
    (cd "$MODULES/kubernetes" && go build -p "$GO_JOBS" -ldflags "$ld" -o "$dest.tmp/" \
      k8s.io/kubernetes/cmd/kube-apiserver \
      k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler) || die "Kubernetes build failed"
    has_all "$dest.tmp" "${bins[@]}" || die "Kubernetes build produced no binaries"
    commit "$dest"
    state="built in $((SECONDS - t0)) s"
  fi
  local b
  for b in "${bins[@]}"; do
    link "$dest/$b" "$b"
    report "$b" "$("$dest/$b" --version | awk '{print $2}')" "$state"
  done
}

build_etcd() {
  local dest="$CACHE/etcd-$ETCD_VERSION" state=cached t0=$SECONDS
  if ! has_all "$dest" etcd; then
    need_go
    check_pin etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
    log "building etcd $ETCD_VERSION ..."
    begin "$dest"
    (cd "$MODULES/etcd" && go build -p "$GO_JOBS" -ldflags "-s -w" -o "$dest.tmp/etcd" \
      go.etcd.io/etcd/server/v3) || die "etcd build failed"
    commit "$dest"
    state="built in $((SECONDS - t0)) s"
  fi
  link "$dest/etcd" etcd
  report etcd "v$("$dest/etcd" --version | awk '/etcd Version/ {print $3}')" "$state"
}

build_kwok() {
  local dest="$CACHE/kwok-$KWOK_VERSION" state=cached t0=$SECONDS
  if ! has_all "$dest" kwok; then
    need_go
    log "building kwok $KWOK_VERSION ..."
    begin "$dest"
    GOBIN="$dest.tmp" go install -p "$GO_JOBS" -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" \
      || die "kwok build failed"
    commit "$dest"
    state="built in $((SECONDS - t0)) s"
  fi
  link "$dest/kwok" kwok
  report kwok "$("$dest/kwok" --version 2>&1 | grep -o 'v[0-9][0-9.]*' | head -1)" "$state"
}

build_training_operator() {
  local dest="$CACHE/training-operator-$TRAINING_OPERATOR_VERSION" state=cached t0=$SECONDS
  local module=github.com/kubeflow/training-operator
  if ! has_all "$dest" training-operator || [[ ! -s "$dest/pytorchjobs-crd.yaml" ]]; then
    need_go
    log "building the Kubeflow training operator $TRAINING_OPERATOR_VERSION ..."
    begin "$dest"
    GOBIN="$dest.tmp" go install -p "$GO_JOBS" -ldflags "-s -w" \
      "$module/cmd/training-operator.v1@$TRAINING_OPERATOR_VERSION" || die "training-operator build failed"
    mv "$dest.tmp/training-operator.v1" "$dest.tmp/training-operator"
    local src
    src="$(go env GOMODCACHE)/$module@$TRAINING_OPERATOR_VERSION/manifests/base/crds/kubeflow.org_pytorchjobs.yaml"
    [[ -s "$src" ]] || die "the PyTorchJob CRD is not in the module ($src)"
    cp "$src" "$dest.tmp/pytorchjobs-crd.yaml"
    chmod u+w "$dest.tmp/pytorchjobs-crd.yaml"
    commit "$dest"
    state="built in $((SECONDS - t0)) s"
  fi
  link "$dest/training-operator" training-operator
  link "$dest/pytorchjobs-crd.yaml" pytorchjobs-crd.yaml
  report training-operator "$TRAINING_OPERATOR_VERSION" "$state"
}

build_helm() {
  local dest="$CACHE/helm-$HELM_VERSION" state=cached t0=$SECONDS
  if ! has_all "$dest" helm; then
    need_go
    local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
    # As helm's Makefile does: without these a go-installed helm says "v3.19" and assumes
    # Kubernetes 1.20 for .Capabilities.KubeVersion and for lint's deprecation checks.
    local ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
    ld+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
    ld+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
    ld+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor"
    log "building helm $HELM_VERSION ..."
    begin "$dest"
    GOBIN="$dest.tmp" go install -p "$GO_JOBS" -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" \
      || die "helm build failed"
    commit "$dest"
    state="built in $((SECONDS - t0)) s"
  fi
  link "$dest/helm" helm
  report helm "$("$dest/helm" version --short)" "$state"
}

build_dashboard_linter() {
  local dest="$CACHE/dashboard-linter-$DASHBOARD_LINTER_VERSION" state=cached t0=$SECONDS
  if ! has_all "$dest" dashboard-linter; then
    need_go
    check_pin dashboard-linter github.com/grafana/dashboard-linter "$DASHBOARD_LINTER_VERSION"
    log "building dashboard-linter $DASHBOARD_LINTER_VERSION (~18 min cold on 2 busy cores: it links Loki and Prometheus) ..."
    begin "$dest"
    # Built inside its wrapper module (a `tool` directive), so every dependency is the one go.sum pins.
    (cd "$MODULES/dashboard-linter" && go build -p "$GO_JOBS" -ldflags "-s -w" -o "$dest.tmp/dashboard-linter" \
      github.com/grafana/dashboard-linter) || die "dashboard-linter build failed"
    commit "$dest"
    state="built in $((SECONDS - t0)) s"
  fi
  link "$dest/dashboard-linter" dashboard-linter
  # It has no --version; the pseudo-version is the build's identity.
  report dashboard-linter "${DASHBOARD_LINTER_VERSION##*-}" "$state"
}

install_prometheus() {
  local state=cached t0=$SECONDS
  if [[ ! -x /usr/bin/prometheus ]]; then
    local sudo=()
    [[ $(id -u) == 0 ]] || sudo=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    log "installing Debian's prometheus with apt-get ..."
    if ! apt-cache show prometheus >/dev/null 2>&1; then
      "${sudo[@]}" apt-get update -qq || die "apt-get update failed"
    fi
    # --no-install-recommends: the exporters and web assets it recommends are not needed.
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
      || die "apt-get install prometheus failed"
    [[ -x /usr/bin/prometheus ]] || die "apt-get installed prometheus but /usr/bin/prometheus is missing"
    state="installed in $((SECONDS - t0)) s"
  fi
  link /usr/bin/prometheus prometheus
  report prometheus "v$(/usr/bin/prometheus --version 2>&1 | awk 'NR==1 {print $3}')" "$state"
}

write_env() {
  cat >"$BIN/env.sh.tmp" <<EOF
# Written by scripts/e2e-tools.sh: source it to get the e2e tools on PATH.
export AUTOCM_E2E_BIN="$BIN"
export PATH="$BIN:\$PATH"
EOF
  mv "$BIN/env.sh.tmp" "$BIN/env.sh"
}

# Rewrites the wrapper modules for the versions above (needs the Go module proxy).
update_modules() {
  need_go
  local k8s_mod staging_tag="v0.${K8S_VERSION#v1.}"
  k8s_mod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  [[ -f "$k8s_mod" ]] || die "could not download k8s.io/kubernetes@$K8S_VERSION"
  (
    cd "$MODULES/kubernetes"
    sed -n '1,/^module /p' go.mod | sed '$d' >go.mod.new
    {
      echo "module autocm.local/e2e/kubernetes"
      echo
      echo "go 1.24.0"
      echo
      echo "require k8s.io/kubernetes $K8S_VERSION"
      echo
      echo "replace ("
      # Every staging module, i.e. every `=> ./staging/src/...` line of upstream's go.mod.
      awk -v tag="$staging_tag" '$2 == "=>" && $3 ~ /^\.\/staging\// {print "\t" $1 " => " $1 " " tag}' "$k8s_mod"
      echo ")"
    } >>go.mod.new
    mv go.mod.new go.mod
    rm -f go.sum
    go get k8s.io/kubernetes/cmd/kube-apiserver@"$K8S_VERSION" \
      k8s.io/kubernetes/cmd/kube-controller-manager@"$K8S_VERSION" \
      k8s.io/kubernetes/cmd/kube-scheduler@"$K8S_VERSION"
  )
  (
    cd "$MODULES/etcd"
    sed -n '1,/^module /p' go.mod | sed '$d' >go.mod.new
    {
      echo "module autocm.local/e2e/etcd"
      echo
      echo "go 1.24.0"
      echo
      echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
      echo
      echo "replace ("
      local m
      for m in api/v3 client/pkg/v3 client/v3 pkg/v3; do
        printf '\tgo.etcd.io/etcd/%s => go.etcd.io/etcd/%s %s\n' "$m" "$m" "$ETCD_VERSION"
      done
      echo ")"
    } >>go.mod.new
    mv go.mod.new go.mod
    rm -f go.sum
    go get go.etcd.io/etcd/server/v3@"$ETCD_VERSION"
  )
  (
    cd "$MODULES/dashboard-linter"
    {
      echo "module autocm.local/e2e/dashboard-linter"
      echo
      echo "go 1.24.0"
      echo
      echo "tool github.com/grafana/dashboard-linter"
    } >go.mod
    rm -f go.sum
    # The proxy serves this pseudo-version but not its checksum-database entry; go.sum records the
    # hashes once, and later builds verify against it.
    GONOSUMDB=github.com/grafana/dashboard-linter go get "github.com/grafana/dashboard-linter@$DASHBOARD_LINTER_VERSION"
    GONOSUMDB=github.com/grafana/dashboard-linter go mod tidy
  )
  log "wrapper modules updated: Kubernetes $K8S_VERSION, etcd $ETCD_VERSION, dashboard-linter $DASHBOARD_LINTER_VERSION"
}

main() {
  if [[ "${1:-}" == update-modules ]]; then
    update_modules
    return
  fi
  [[ $# == 0 ]] || die "unknown arguments: $* (usage: $0 [update-modules])"
  local start=$SECONDS
  mkdir -p "$BIN"
  # Two `make test` runs at once would otherwise build into the same directories.
  exec 9>"$CACHE/.lock"
  flock 9
  build_kubernetes
  build_etcd
  build_kwok
  build_helm
  build_training_operator
  build_dashboard_linter
  install_prometheus
  write_env
  log "tools in $BIN (source $BIN/env.sh); took $((SECONDS - start)) s"
}

main "$@"
