#!/usr/bin/env bash
# Run a built model-server image and smoke-test it: V1, V2 REST and V2 gRPC against the demo model
# it carries (scripts/smoke_test.py check), then remove the container. CI's image job runs it on
# the image it built once; tests/container runs it on the image the tests built.
#   scripts/smoke-image.sh IMAGE [HTTP_PORT GRPC_PORT]    (ports on 127.0.0.1; default 18080 18081)
# The engine is the one scripts/build-image.sh picks (Docker if its engine answers, else Podman).
# PYTHON (default .venv/bin/python) runs the smoke client, which needs httpx and tritonclient[grpc].
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
image="${1:?usage: scripts/smoke-image.sh IMAGE [HTTP_PORT GRPC_PORT]}"
http_port="${2:-18080}"
grpc_port="${3:-18081}"
python="${PYTHON:-$repo_root/.venv/bin/python}"
read -r -a engine <<<"$("$repo_root/scripts/build-image.sh" --print-engine)"
name="model-server-smoke-$$"

trap '"${engine[@]}" rm --force "$name" >/dev/null 2>&1 || true' EXIT

# The limits every engine accepts (Podman as root on these machines cannot raise them).
"${engine[@]}" run --detach --name "$name" --ulimit nofile=1024:1024 --ulimit nproc=1000:1000 \
  --publish "127.0.0.1:$http_port:8080" --publish "127.0.0.1:$grpc_port:8081" "$image" >/dev/null
for _ in $(seq 120); do
  if "$python" -c "import httpx, sys; sys.exit(httpx.get('http://127.0.0.1:$http_port/v2/health/ready', timeout=2).status_code != 200)" 2>/dev/null; then
    "$python" "$repo_root/scripts/smoke_test.py" check --url "http://127.0.0.1:$http_port" --grpc "127.0.0.1:$grpc_port"
    exit $?
  fi
  if [[ "$("${engine[@]}" inspect --format '{{.State.Running}}' "$name" 2>/dev/null)" != true ]]; then
    echo "smoke-image: the container stopped:" >&2
    "${engine[@]}" logs "$name" >&2 || true
    exit 1
  fi
  sleep 1
done
echo "smoke-image: $image not ready after 120 s:" >&2
"${engine[@]}" logs "$name" >&2 || true
exit 1
