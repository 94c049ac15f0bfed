#!/usr/bin/env bash
# Package charts/model-server for a release: chart version and appVersion VERSION, and
# image.repository pointing at the published image, so `helm install oci://.../model-server
# --version VERSION` pulls the image of the same release. With --push, pushes the package to an
# OCI registry (helm push), logging in with REGISTRY_USER / REGISTRY_PASSWORD when set.
#   scripts/package-chart.sh --version 0.1.0 --image-repository ghcr.io/acme/model-server \
#     [--dest dist] [--push oci://ghcr.io/acme/charts]
# HELM: the helm command (default: .tools/bin/helm if present, else helm on PATH).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="" image_repository="" dest="dist" push=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --version) version="${2:?--version needs a value}"; shift ;;
    --image-repository) image_repository="${2:?--image-repository needs a value}"; shift ;;
    --dest) dest="${2:?--dest needs a value}"; shift ;;
    --push) push="${2:?--push needs a value}"; shift ;;
    *) echo "package-chart: unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done
[[ -n $version && -n $image_repository ]] || { echo "package-chart: --version and --image-repository are required" >&2; exit 2; }
helm="${HELM:-}"
if [[ -z $helm ]]; then
  if [[ -x "$repo_root/.tools/bin/helm" ]]; then helm="$repo_root/.tools/bin/helm"; else helm=helm; fi
fi

# Registries want lower-case repositories (a GitHub owner may have capitals).
image_repository="${image_repository,,}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$repo_root/charts/model-server" "$work/model-server"
# Only the image repository changes; every other default stays as the chart ships it.
python3 - "$work/model-server/values.yaml" "$image_repository" <<'PY'
import re, sys
path, repository = sys.argv[1:]
text = open(path).read()
updated, count = re.subn(r"(?m)^(image:\n  repository: ).*$", lambda m: m.group(1) + repository, text, count=1)
if count != 1:
    sys.exit(f"package-chart: no 'image:\\n  repository:' in {path}")
open(path, "w").write(updated)
PY
mkdir -p "$dest"
"$helm" package "$work/model-server" --version "$version" --app-version "$version" --destination "$dest"
package="$dest/model-server-$version.tgz"
if [[ -n $push ]]; then
  if [[ -n ${REGISTRY_PASSWORD:-} ]]; then
    host="${push#oci://}"
    printf '%s' "$REGISTRY_PASSWORD" | "$helm" registry login "${host%%/*}" --username "${REGISTRY_USER:?REGISTRY_USER is needed with REGISTRY_PASSWORD}" --password-stdin
  fi
  "$helm" push "$package" "${push,,}"
fi
echo "package-chart: $package (image $image_repository:$version)"
