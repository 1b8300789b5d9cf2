#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The container image, built with podman from container/Dockerfile on local
# stand-ins of its base images:
#  - it is at most 21 MB (decimal) and has no shell;
#  - run as the docs say (host network, read-only root, every capability
#    dropped but NET_BIND_SERVICE, no new privileges, a non-root user) in
#    front of three TLS upstreams on 127.0.0.2-4, a real curl gets through on
#    a port below 1024, requests spread over the upstreams, a killed upstream
#    is skipped invisibly, /readyz answers and SIGTERM stops it with status 0;
#  - run by runc the way Kubernetes runtimes run a non-root container with
#    capabilities.add (bounding/effective/permitted, no ambient capability,
#    noNewPrivileges): the binary's file capability is what lets it bind the
#    port, and the same run without the capability fails at once.
set -euo pipefail
src=${APILB_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export CONTAINERS_CONF=$src/scripts/containers.conf
work=$(mktemp -d)
tag=localhost/apilb-test:$$
name=apilb-test-$$
runc_id=apilb-test-runc-$$
pids=()
cleanup() {
    podman rm -f "$name" >/dev/null 2>&1 || true
    runc delete -f "$runc_id" >/dev/null 2>&1 || true
    podman rmi -f "$tag" >/dev/null 2>&1 || true
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    podman logs "$name" 2>&1 | tail -20 || true
    exit 1
}

bash "$src/scripts/container-bases.sh"
podman build -q --network host -f "$src/container/Dockerfile" -t "$tag" "$src" >/dev/null
size=$(podman image inspect "$tag" --format '{{.Size}}')
echo "image size: $size bytes"
[ "$size" -le 21000000 ] || fail "image larger than 21 MB"
if podman run --rm --entrypoint /bin/sh "$tag" -c true >/dev/null 2>&1; then
    fail "the image has a shell"
fi

free_port() {  # a free TCP port on 127.0.0.1 in [$1, $2)
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
# One certificate for the three upstreams; each serves a file naming itself.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=kubernetes \
    -addext subjectAltName=IP:127.0.0.1,DNS:kubernetes \
    -keyout "$work/key.pem" -out "$work/crt.pem" 2>/dev/null
up=$(free_port 20000 30000)
for i in 2 3 4; do
    mkdir "$work/up$i"
    echo "upstream-$i" >"$work/up$i/who"
    (cd "$work/up$i" && exec openssl s_server -accept "127.0.0.$i:$up" -cert "$work/crt.pem" \
        -key "$work/key.pem" -WWW -quiet </dev/null >/dev/null 2>&1) &
    pids+=($!)
done
# A privileged port: 443 when free, proving CAP_NET_BIND_SERVICE either way.
port=$(free_port 443 444)
[ -n "$port" ] || port=$(free_port 600 1000)
[ -n "$port" ] || fail "no free port below 1024"
admin=$(free_port 30000 40000)
ask() {  # prints the name of the upstream that answered through port $1
    curl -sS --fail --max-time 3 --cacert "$work/crt.pem" "https://127.0.0.1:$1/who"
}

podman run -d --name "$name" --network host --read-only --cap-drop ALL \
    --cap-add NET_BIND_SERVICE --security-opt no-new-privileges --user 70443:70443 "$tag" \
    --listen "127.0.0.1:$port" --upstream "127.0.0.2:$up" --upstream "127.0.0.3:$up" \
    --upstream "127.0.0.4:$up" --admin-listen "127.0.0.1:$admin" --health-check tls \
    --health-interval 500ms --health-timeout 400ms --rise 1 >/dev/null
ok=
for _ in $(seq 50); do
    if ask "$port" >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.2
done
[ -n "$ok" ] || fail "no answer through the container on port $port"
seen=$(for _ in $(seq 12); do ask "$port" || echo ERROR; done | sort | uniq -c)
echo "12 requests: $(echo $seen)"
echo "$seen" | grep -q ERROR && fail "a request failed"
[ "$(echo "$seen" | wc -l)" -ge 2 ] || fail "every request went to one upstream"
# Kill upstream 2: every request still succeeds, none from it.
kill "${pids[0]}"
wait "${pids[0]}" 2>/dev/null || true
seen=$(for _ in $(seq 8); do ask "$port" || echo ERROR; done | sort | uniq -c)
echo "8 requests with upstream-2 down: $(echo $seen)"
echo "$seen" | grep -qE 'ERROR|upstream-2' && fail "failover was visible to the client"
# Whether the runtime's seccomp profile lets apilb batch its sends (io_uring): said, not asserted.
echo "sends: $(podman logs "$name" 2>&1 | grep -oE 'msg="sends[^"]*"( [a-z]+="[^"]*")?' | head -1)"
ready=$(curl -sS --max-time 3 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin/readyz")
[ "$ready" = 200 ] || fail "/readyz answered $ready"
podman stop -t 10 "$name" >/dev/null
code=$(podman inspect "$name" --format '{{.State.ExitCode}}')
[ "$code" = 0 ] || fail "apilb exited $code on SIGTERM"
podman rm "$name" >/dev/null
echo "PASS podman: read-only, non-root, NET_BIND_SERVICE only, no-new-privileges, port $port, 3 upstreams"

# Kubernetes-style runtime config, run by runc directly from the image's files.
mnt=$(podman image mount "$tag")
mkdir "$work/bundle"
cp -a "$mnt" "$work/bundle/rootfs"
podman image unmount "$tag" >/dev/null
getcap "$work/bundle/rootfs/usr/bin/apilb" | grep -q cap_net_bind_service ||
    fail "the binary in the image has no file capability"
run_k8s_style() {  # $1: capability list (JSON); prints apilb's exit status
    (cd "$work/bundle" && rm -f config.json && runc spec)
    python3 - "$work/bundle/config.json" "$1" "$port" "$up" <<'PY'
import json, sys
path, caps, port, up = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
c = json.load(open(path))
p = c["process"]
p["terminal"] = False
p["user"] = {"uid": 70443, "gid": 70443}
p["args"] = ["/usr/bin/apilb", "--listen", "127.0.0.1:" + port, "--upstream",
             "127.0.0.3:" + up, "--admin-listen", "127.0.0.1:0", "--health-check", "none"]
p["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
p["noNewPrivileges"] = True
p["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 20000, "soft": 20000}]
c["root"]["readonly"] = True
c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]
json.dump(c, open(path, "w"))
PY
    (cd "$work/bundle" && exec runc run "$runc_id" >"$work/runc.log" 2>&1) &
    local rp=$! rc=
    for _ in $(seq 50); do
        if ! kill -0 "$rp" 2>/dev/null; then break; fi
        if ask "$port" >"$work/runc.who" 2>/dev/null; then
            runc kill "$runc_id" TERM 2>/dev/null || true
            break
        fi
        sleep 0.2
    done
    wait "$rp" && rc=0 || rc=$?
    runc delete -f "$runc_id" >/dev/null 2>&1 || true
    echo "$rc"
}
rc=$(run_k8s_style '["CAP_NET_BIND_SERVICE"]')
[ "$rc" = 0 ] || { cat "$work/runc.log"; fail "runc, no ambient caps: apilb exited $rc"; }
grep -q upstream-3 "$work/runc.who" || { cat "$work/runc.log"; fail "runc: no answer via port $port"; }
# Without NET_BIND_SERVICE in the container's sets, the kernel refuses to
# exec a binary whose file capability (+ep) it cannot grant: the container
# fails at once and says so (docs/packaging.md tells users to keep the cap).
rc=$(run_k8s_style '[]')
[ "$rc" != 0 ] || { cat "$work/runc.log"; fail "runc without the capability: exit 0"; }
grep -qiE "operation not permitted|permission denied" "$work/runc.log" ||
    { cat "$work/runc.log"; fail "runc without the capability: no clear message"; }
echo "PASS runc (Kubernetes-style: no ambient capability, noNewPrivileges): the file capability binds port $port; without NET_BIND_SERVICE the start fails (exit $rc): $(head -1 "$work/runc.log")"
