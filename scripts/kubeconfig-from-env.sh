#!/usr/bin/env bash
# Write the kubeconfig held in KUBECONFIG_DATA (a CI secret: the file itself, or base64 of it) to
# the path in KUBECONFIG, readable by its owner only. The model release workflow runs it.
set -euo pipefail
: "${KUBECONFIG:?KUBECONFIG must name the file to write}"
: "${KUBECONFIG_DATA:?KUBECONFIG_DATA is empty: set the KUBECONFIG secret}"
umask 077
mkdir -p "$(dirname "$KUBECONFIG")"
if [[ $KUBECONFIG_DATA == *apiVersion* ]]; then
  printf '%s\n' "$KUBECONFIG_DATA" >"$KUBECONFIG"
else
  printf '%s' "$KUBECONFIG_DATA" | base64 --decode >"$KUBECONFIG"
fi
echo "kubeconfig-from-env: wrote $KUBECONFIG"
