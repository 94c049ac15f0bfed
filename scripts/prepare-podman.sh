#!/usr/bin/env bash
# Prepare Podman on a machine without registry access (CI, developer boxes):
# build a local Debian bookworm + Python 3.11 base image with debootstrap and
# import it as localhost/debian-python:bookworm, the BASE_IMAGE the container
# tests build on. Skips the ~40 s debootstrap when that image already exists.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/prepare-podman.sh [--arch ARCH] [--force] [--help]

Builds the local base image localhost/debian-python:bookworm for Podman:
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates
then `podman import`. Needs root and the Debian packages podman, runc and
debootstrap. The Debian mirror is read from /etc/apt/sources.list.d/debian.sources
(or /etc/apt/sources.list); set DEBIAN_MIRROR to override it.

  --arch ARCH  a base image for another architecture (e.g. arm64, for
               build-image.sh --platform linux/arm64), tagged
               localhost/debian-python:bookworm-ARCH; needs qemu user emulation
               registered with binfmt_misc (Debian's qemu-user-static), and
               takes minutes, not seconds, as every package runs emulated
  --force      rebuild the base image even if it already exists
USAGE
}

base_image=localhost/debian-python:bookworm
arch=""
force=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --arch)
      [[ $# -ge 2 ]] || { echo "--arch needs a value" >&2; exit 2; }
      arch=$2
      base_image=localhost/debian-python:bookworm-$arch
      shift ;;
    --force) force=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

for tool in podman debootstrap; do
  if ! command -v "$tool" >/dev/null; then
    echo "prepare-podman: '$tool' not found; install it with: apt-get install -y podman runc debootstrap" >&2
    exit 1
  fi
done

# The engine command (with this machine's runtime flags) lives in build-image.sh.
scripts_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
read -ra podman <<<"$("$scripts_dir/build-image.sh" --engine podman --print-engine)"

if [[ $force -eq 0 ]] && "${podman[@]}" image exists "$base_image"; then
  echo "prepare-podman: $base_image already exists, skipping debootstrap"
  exit 0
fi

# First bookworm mirror configured for apt on this host (deb822 or one-line format).
debian_mirror() {
  local sources=/etc/apt/sources.list.d/debian.sources
  if [[ -r $sources ]]; then
    awk '/^URIs:/ {uri=$2} /^Suites:/ && uri && / bookworm( |$)/ {print uri; exit}' "$sources"
  elif [[ -r /etc/apt/sources.list ]]; then
    awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list
  fi
}
mirror="${DEBIAN_MIRROR:-$(debian_mirror)}"
if [[ -z $mirror ]]; then
  echo "prepare-podman: no bookworm mirror found in apt sources; set DEBIAN_MIRROR" >&2
  exit 1
fi

rootfs="$(mktemp -d /tmp/debian-python-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs" "$rootfs.log"' EXIT

echo "prepare-podman: debootstrap bookworm from $mirror"
arch_args=()
if [[ -n $arch ]]; then
  arch_args=(--arch "$arch")
fi
debootstrap "${arch_args[@]}" --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
  tail -n 30 "$rootfs.log" >&2
  exit 1
}
# Downloaded .debs, apt lists, docs, man pages and translations (~50 MB) are
# not needed in a server image (the slim Debian images drop them too).
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/usr/share/{doc,man,info,locale}/*

tar -C "$rootfs" -c . | "${podman[@]}" import --quiet "${arch_args[@]}" --change 'CMD ["python3"]' - "$base_image" >/dev/null
echo "prepare-podman: built $base_image"
