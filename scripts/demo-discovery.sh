#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The second half of the demo (scripts/demo.sh runs it): apilb's main job,
# following the cluster's apiservers. In a network namespace of its own
# (unshare -n; nothing outside is touched) a fake cluster of four apiservers
# on 10.213.0.2-5 (tests/fakes/fake_apiserver.py: real TLS, the `kubernetes`
# EndpointSlice as the apiserver writes it, list and watch) and apilb with a
# kubeconfig: apiservers discovered, one added and one removed live, the one
# serving the watch killed while requests keep flowing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "${DEMO_IN_NETNS:-}" != 1 ]; then
    exec env DEMO_IN_NETNS=1 unshare -n -- bash "$0" "$@"
fi
apilb=${APILB:-$root/build/apilb}
. "$root/scripts/procs.sh"
ip link set lo up
for i in 2 3 4 5; do ip addr add "10.213.0.$i/32" dev lo; done

bash "$root/tests/fakes/mkcerts.sh" "$work" >/dev/null
echo token-demo >"$work/token"
python3 "$root/tests/fakes/fake_apiserver.py" --cert "$work/server.pem" --key "$work/server.key" \
    --token-file "$work/token" --ready-file "$work/fake.json" --bookmark-interval 2 \
    --lease-ttl 3 --members 10.213.0.2,10.213.0.3,10.213.0.4 \
    --listen 10.213.0.2:6443 --listen 10.213.0.3:6443 --listen 10.213.0.4:6443 \
    --listen 10.213.0.5:6443 2>"$work/fake.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/fake.json" ] && break; sleep 0.05; done
ctl_port=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["control"])' "$work/fake.json")
ctl() {  # ctl PATH [JSON]: the fake cluster's control API
    curl -sS --fail --max-time 5 -X POST -d "${2:-{\}}" "http://127.0.0.1:$ctl_port$1" >/dev/null
}
cat >"$work/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: demo
  cluster:
    certificate-authority: $work/ca.pem
    server: https://10.213.0.2:6443
users:
- name: demo
  user:
    tokenFile: $work/token
contexts:
- name: demo
  context: {cluster: demo, user: demo}
current-context: demo
KC

port=$(free_port 127.0.0.1)
admin=$(free_port 127.0.0.1)
echo "== a fake cluster: apiservers 10.213.0.2-4 published in the kubernetes EndpointSlice, 10.213.0.5 not yet"
echo "== apilb on 127.0.0.1:$port with the kubeconfig (server 10.213.0.2) and no other list"
"$apilb" --listen "127.0.0.1:$port" --kubeconfig "$work/kubeconfig" --admin-listen "127.0.0.1:$admin" \
    --health-interval 500ms --health-timeout 400ms --discovery-debounce 200ms --connect-timeout 500ms \
    --log-level info 2>"$work/apilb.log" &
apid=$!
pids+=("$apid")

show() { "$apilb" status --admin "127.0.0.1:$admin" | sed 's/^/   /'; }
# wait_for EXPR: until the /upstreams JSON (as u) makes the Python expression true.
wait_for() {
    for _ in $(seq 100); do
        kill -0 "$apid" 2>/dev/null || { echo "demo: apilb exited:" >&2; tail -5 "$work/apilb.log" >&2; exit 1; }
        if curl -s --max-time 2 "http://127.0.0.1:$admin/upstreams" | python3 -c '
import json, sys
u = {e["address"]: e for e in json.load(sys.stdin)["upstreams"]}
sys.exit(0 if eval(sys.argv[1]) else 1)' "$1" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "demo: apilb did not reach: $1" >&2
    tail -20 "$work/apilb.log" >&2
    exit 1
}
ask() {
    curl -sS --fail --max-time 5 --cacert "$work/ca.pem" "https://127.0.0.1:$port/version" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["servedBy"])'
}
healthy='all(u[a]["health"] == "healthy" for a in u if not u[a]["draining"])'
wait_for "sorted(u) == ['10.213.0.2:6443', '10.213.0.3:6443', '10.213.0.4:6443'] and $healthy"
echo "== discovered (apilb status):"
show

echo "== 10.213.0.5 becomes ready and joins the EndpointSlice: apilb adds it live"
ctl /instance/10.213.0.5/ready
wait_for "'10.213.0.5:6443' in u and $healthy"
show

echo "== 10.213.0.3 shuts down gracefully (it leaves the EndpointSlice first): apilb drains it"
ctl /instance/10.213.0.3/stop '{"delay": 2}'
wait_for "'10.213.0.3:6443' not in u or u['10.213.0.3:6443']['draining']"
show

watching=$(curl -s "http://127.0.0.1:$ctl_port/" | python3 -c '
import json, sys
reqs = [r for r in json.load(sys.stdin)["requests"] if "watch=" in r[1]]
print(reqs[-1][0] if reqs else "")')
echo "== the apiserver serving apilb's watch (${watching:-unknown}) crashes; requests keep flowing"
( ok=0; bad=0; end=$((SECONDS + 4))
  while [ "$SECONDS" -lt "$end" ]; do
      if ask >/dev/null 2>&1; then ok=$((ok + 1)); else bad=$((bad + 1)); fi
  done
  echo "   $ok requests answered, $bad failed, while it crashed" ) &
loop=$!
sleep 1
[ -z "$watching" ] || ctl "/instance/$watching/crash"
wait "$loop"
echo "== 10.213.0.3 comes back: the watch, now on a surviving apiserver, sees it"
ctl /instance/10.213.0.3/start
ctl /instance/10.213.0.3/ready
wait_for "'10.213.0.3:6443' in u and not u['10.213.0.3:6443']['draining']"
show
echo "== apilb's discovery log"
grep -E 'msg="(upstream table published|watch|apiserver request failed|upstream health)' \
    "$work/apilb.log" | sed 's/^/   /' | tail -15
kill -TERM "$apid"
rc=0
wait "$apid" || rc=$?
echo "   apilb exited $rc"
[ "$rc" -eq 0 ]
