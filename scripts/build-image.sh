#!/usr/bin/env bash
# Build the model-server container image with Docker when a Docker engine
# answers, else with Podman (flags for rootful Podman without systemd/crun).
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/build-image.sh [--tag TAG] [--base-image IMAGE] [--engine docker|podman]
                              [--extra-packages "PKG ..."] [--target edge]
                              [--platform PLATFORM --build-base-image IMAGE] [--dry-run]
                              [--print-engine] [--help]

Builds the image from the repository's Dockerfile and prints its tag and size.

  --tag TAG           image tag (default: model-server:dev)
  --base-image IMAGE  any Debian-based Python 3.11 image, passed as the
                      BASE_IMAGE build arg (default: python:3.11-slim). Where no
                      registry is reachable, build localhost/debian-python:bookworm
                      with scripts/prepare-podman.sh and pass it here.
  --engine ENGINE     docker or podman (default: docker if `docker info` answers,
                      else podman)
  --extra-packages "PKG ..."
                      pip requirements the served models need beyond
                      scikit-learn (xgboost, lightgbm, your estimators' package),
                      installed into the image's venv (EXTRA_PACKAGES build arg)
  --target edge       build the edge runtime's image (python -m model_server.edge
                      serving ONNX models, no KServe or scikit-learn) instead of
                      the server's
  --platform PLATFORM build for another platform, e.g. linux/arm64 (needs qemu user
                      emulation: Debian's qemu-user-static), from a --base-image
                      of that platform
  --build-base-image IMAGE
                      with --platform: an image of the build machine's platform,
                      where the demo models are trained (BUILD_BASE_IMAGE)
  --dry-run           print the build command instead of running it
  --print-engine      print the engine command line (with its global flags) that
                      this script would use, and exit; exits 1 if there is none
  -h, --help          show this help

Podman runs as `podman --runtime runc --cgroup-manager cgroupfs` and builds with
`--isolation chroot --network host`, mounting the host CA bundle
(/etc/ssl/certs/ca-certificates.crt) read-only so pip trusts the same CAs as the
host. PIP_INDEX_URL, PIP_EXTRA_INDEX_URL and PIP_TRUSTED_HOST are passed on as
build args when set in the environment.
USAGE
}

tag=model-server:dev
base_image=python:3.11-slim
engine=""
extra_packages=""
target=""
platform=""
build_base_image=""
dry_run=0
print_engine=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --tag) tag="${2:?--tag needs a value}"; shift ;;
    --base-image) base_image="${2:?--base-image needs a value}"; shift ;;
    --engine) engine="${2:?--engine needs a value}"; shift ;;
    --extra-packages) extra_packages="${2:?--extra-packages needs a value}"; shift ;;
    --target) target="${2:?--target needs a value}"; shift ;;
    --platform) platform="${2:?--platform needs a value}"; shift ;;
    --build-base-image) build_base_image="${2:?--build-base-image needs a value}"; shift ;;
    --dry-run) dry_run=1 ;;
    --print-engine) print_engine=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "build-image: unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

if [[ -z $engine ]]; then
  if command -v docker >/dev/null && timeout 20 docker info >/dev/null 2>&1; then
    engine=docker
  elif command -v podman >/dev/null; then
    engine=podman
  else
    echo "build-image: no container engine: no Docker engine answers 'docker info' and podman is not installed" >&2
    exit 1
  fi
fi

case "$engine" in
  docker) engine_cmd=(docker) ;;
  # runc + cgroupfs: the machines this project runs on have neither crun nor systemd.
  podman) engine_cmd=(podman --runtime runc --cgroup-manager cgroupfs) ;;
  *) echo "build-image: --engine must be docker or podman, not '$engine'" >&2; exit 2 ;;
esac
if [[ $dry_run -eq 0 ]] && ! command -v "$engine" >/dev/null; then
  echo "build-image: $engine is not installed" >&2
  exit 1
fi

if [[ $print_engine -eq 1 ]]; then
  echo "${engine_cmd[*]}"
  exit 0
fi

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo_root/pyproject.toml")"
revision="$(git -C "$repo_root" rev-parse HEAD 2>/dev/null || echo unknown)"
build_cmd=("${engine_cmd[@]}" build --tag "$tag" --build-arg "BASE_IMAGE=$base_image"
  --build-arg "VERSION=$version" --build-arg "REVISION=$revision")
if [[ -n $target ]]; then
  build_cmd+=(--target "$target")
fi
if [[ -n $platform ]]; then
  if [[ -z $build_base_image ]]; then
    echo "build-image: --platform needs --build-base-image (an image of this machine's platform)" >&2
    exit 2
  fi
  # Podman 4 leaves BUILDPLATFORM empty, and finds a local image of another platform by its
  # ID only: both are spelled out.
  base_ref=$base_image
  if [[ $engine == podman ]] && [[ $dry_run -eq 0 ]]; then
    base_ref="$("${engine_cmd[@]}" image inspect --format '{{.Id}}' "$base_image")"
  fi
  host_arch="$(uname -m | sed 's/x86_64/amd64/; s/aarch64/arm64/')"
  build_cmd+=(--platform "$platform" --build-arg "BUILDPLATFORM=linux/$host_arch"
    --build-arg "BASE_IMAGE=$base_ref" --build-arg "BUILD_BASE_IMAGE=$build_base_image")
fi
if [[ -n $extra_packages ]]; then
  build_cmd+=(--build-arg "EXTRA_PACKAGES=$extra_packages")
fi
for var in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST; do
  if [[ -n ${!var:-} ]]; then
    build_cmd+=(--build-arg "$var=${!var}")
  fi
done
if [[ $engine == podman ]]; then
  build_cmd+=(--isolation chroot --network host)
  ca_bundle=/etc/ssl/certs/ca-certificates.crt
  if [[ -r $ca_bundle ]]; then
    build_cmd+=(--volume "$ca_bundle:$ca_bundle:ro")
  fi
fi
build_cmd+=("$repo_root")

if [[ $dry_run -eq 1 ]]; then
  printf '%q ' "${build_cmd[@]}"
  echo
  exit 0
fi

"${build_cmd[@]}"
size_bytes="$("${engine_cmd[@]}" image inspect --format '{{.Size}}' "$tag")"
echo "image: $tag"
echo "size: $((size_bytes / 1000000)) MB ($size_bytes bytes)"
