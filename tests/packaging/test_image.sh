#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the container image with podman and runs it the way the README says
# (host network, read-only root, every capability dropped but
# NET_BIND_SERVICE, a non-root user) in front of a local TLS upstream; a real
# curl must get through on a port below 1024. Also: the image is <= 20 MB.
set -euo pipefail
src=${APILB_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export CONTAINERS_CONF=$src/scripts/containers.conf
work=$(mktemp -d)
tag=localhost/apilb-test:$$
name=apilb-test-$$
srv=
cleanup() {
    podman rm -f "$name" >/dev/null 2>&1 || true
    podman rmi -f "$tag" >/dev/null 2>&1 || true
    [ -z "$srv" ] || kill "$srv" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

bash "$src/scripts/container-bases.sh"
podman build -q --network host -f "$src/container/Dockerfile" -t "$tag" "$src" >/dev/null
size=$(podman image inspect "$tag" --format '{{.Size}}')
echo "image size: $size bytes ($((size / 1024 / 1024)) MiB)"
[ "$size" -le $((20 * 1024 * 1024)) ] || { echo "FAIL: image larger than 20 MiB"; exit 1; }
if podman run --rm --entrypoint /bin/sh "$tag" -c true >/dev/null 2>&1; then
    echo "FAIL: the image has a shell"
    exit 1
fi

free_port() {  # a free TCP port on 127.0.0.1 in [$1, $2]
    python3 - "$1" "$2" <<'PY'
import socket, sys
for p in range(int(sys.argv[1]), int(sys.argv[2])):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        print(p)
        break
    except OSError:
        pass
    finally:
        s.close()
PY
}
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=kubernetes \
    -addext subjectAltName=IP:127.0.0.1,DNS:kubernetes \
    -keyout "$work/key.pem" -out "$work/crt.pem" 2>/dev/null
up=$(free_port 20000 30000)
openssl s_server -accept "127.0.0.2:$up" -cert "$work/crt.pem" -key "$work/key.pem" -www -quiet \
    </dev/null >/dev/null 2>&1 &
srv=$!
# A privileged port: 443 when free, proving CAP_NET_BIND_SERVICE either way.
port=$(free_port 443 444)
[ -n "$port" ] || port=$(free_port 600 1000)
admin=$(free_port 30000 40000)
podman run -d --name "$name" --network host --read-only --cap-drop ALL \
    --cap-add NET_BIND_SERVICE --user 65532:65532 "$tag" \
    --listen "127.0.0.1:$port" --upstream "127.0.0.2:$up" --admin-listen "127.0.0.1:$admin" \
    --health-check tls >/dev/null
ok=
for _ in $(seq 50); do
    if curl -sS --fail --max-time 3 --cacert "$work/crt.pem" "https://127.0.0.1:$port/" \
        >"$work/body" 2>/dev/null; then
        ok=1
        break
    fi
    sleep 0.2
done
if [ -z "$ok" ]; then
    echo "FAIL: no answer through the container on port $port"
    podman logs "$name" | tail -20
    exit 1
fi
grep -q "s_server" "$work/body" || { echo "FAIL: unexpected body"; exit 1; }
curl -sS --fail "http://127.0.0.1:$admin/readyz"
podman stop -t 10 "$name" >/dev/null
code=$(podman inspect "$name" --format '{{.State.ExitCode}}')
[ "$code" = 0 ] || { echo "FAIL: apilb exited $code on SIGTERM"; podman logs "$name" | tail; exit 1; }
echo "PASS image: curl through the read-only, non-root container on 127.0.0.1:$port; clean stop"
