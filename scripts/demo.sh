#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The demo: installs what is needed (Debian packages), builds apilb, starts
# three TLS "apiservers" on 127.0.0.2-4:6443 and apilb on 127.0.0.1:443 in
# front of them, then shows a real client (curl) being balanced, an
# apiserver dying without the client noticing, and a live reload; then
# apilb's main job, discovery, against a fake cluster (scripts/demo-discovery.sh).
# DEMO_PORT picks another listen port (443 is used when free).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ -z "${DEMO_NO_SETUP:-}" ]; then
    bash scripts/deps.sh core
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build build -j"$(nproc)" >/dev/null
fi
apilb=${APILB:-$root/build/apilb}
. "$root/scripts/procs.sh"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=${DEMO_PORT:-443}
if ! port_free "$port"; then
    port=$(free_port 127.0.0.1)
    echo "demo: 127.0.0.1:${DEMO_PORT:-443} is taken; using port $port"
fi
up_port=$(free_port 127.0.0.2)
[ -z "${DEMO_UP_PORT:-}" ] || up_port=$DEMO_UP_PORT

echo "== a CA and an apiserver certificate for 127.0.0.1 (what kubelet would verify)"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=demo-ca -keyout "$work/ca.key" \
    -out "$work/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver -keyout "$work/srv.key" \
    -out "$work/srv.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,IP:127.0.0.2,IP:127.0.0.3,IP:127.0.0.4,DNS:kubernetes\n' \
    >"$work/san.ext"
openssl x509 -req -in "$work/srv.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
    -CAcreateserial -days 1 -extfile "$work/san.ext" -out "$work/srv.pem" 2>/dev/null

echo "== three TLS apiservers on 127.0.0.2-4:$up_port"
for i in 2 3 4; do
    python3 scripts/demo/upstream.py "127.0.0.$i" "$up_port" "$work/srv.pem" "$work/srv.key" &
    pids+=($!)
    eval "up$i=$!"
done
for i in 2 3 4; do
    for _ in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.$i/$up_port") 2>/dev/null && break
        sleep 0.1
    done
done

printf '127.0.0.2:%s\n127.0.0.3:%s\n' "$up_port" "$up_port" >"$work/upstreams"
echo "== apilb on 127.0.0.1:$port, upstreams file lists 127.0.0.2 and 127.0.0.3, seed 127.0.0.4"
"$apilb" --listen "127.0.0.1:$port" --upstreams-file "$work/upstreams" \
    --upstream "127.0.0.4:$up_port" --balance round-robin --admin-listen off \
    --health-check none --connect-timeout 500ms 2>"$work/apilb.log" &
apid=$!
pids+=("$apid")
for _ in $(seq 50); do
    grep -q 'msg="started"' "$work/apilb.log" && break
    sleep 0.1
done

ask() {
    curl -sS --fail --max-time 5 --cacert "$work/ca.pem" "https://127.0.0.1:$port/version" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["servedBy"])'
}
echo "== six requests through apilb (TLS verified end to end by curl)"
seen=""
for _ in 1 2 3 4 5 6; do
    s=$(ask)
    echo "   served by $s"
    seen="$seen $s"
done
for i in 2 3 4; do
    case "$seen" in *127.0.0.$i*) ;; *) echo "demo: 127.0.0.$i never answered" >&2; exit 1 ;; esac
done

echo "== kill the apiserver on 127.0.0.2: clients do not notice"
kill "$up2"
wait "$up2" 2>/dev/null || true
for _ in 1 2 3 4 5 6; do
    s=$(ask)
    echo "   served by $s"
    [ "$s" != 127.0.0.2 ] || { echo "demo: dead upstream served a request" >&2; exit 1; }
done

echo "== rewrite the upstreams file to 127.0.0.3 only: applied live"
printf '127.0.0.3:%s\n' "$up_port" >"$work/upstreams.new"
mv "$work/upstreams.new" "$work/upstreams"
sleep 0.5
echo "   apilb: $(grep -o 'msg="upstream table published".*' "$work/apilb.log" | tail -1)"

echo "== SIGTERM: apilb drains and exits 0"
kill -TERM "$apid"
rc=0
wait "$apid" || rc=$?
echo "   apilb exited $rc"
echo "== apilb's log"
sed 's/^/   /' "$work/apilb.log"
[ "$rc" -eq 0 ]

echo
echo "==== discovery: apilb following a cluster's apiservers"
if [ "$(id -u)" -ne 0 ]; then
    echo "demo: the discovery part needs root (a network namespace of its own); skipped"
    exit 0
fi
APILB="$apilb" bash "$root/scripts/demo-discovery.sh"
