#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Where apilb's CPU goes under each benchmark workload: perf samples of the
# apilb process (user and kernel), split into apilb's own code, libraries and
# the kernel, with the top symbols. Run after a build:
#
#   bash tests/bench/profile.sh        # writes tests/bench/results/profile.txt
#
# Needs perf (the machine's linux-perf) and the benchmark tools (run.sh
# installs them).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
apilb=${APILB:-$root/build/apilb}
tool=${BENCHTOOL:-$root/build/tests/bench/benchtool}
out=${BENCH_OUT:-$root/tests/bench/results}/profile.txt
command -v perf >/dev/null || { echo "profile.sh: perf is not installed" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"
. "$root/scripts/procs.sh"

bport=$(free_port 127.0.0.2)
for i in 2 3 4; do
    "$tool" server "127.0.0.$i" "$bport" >/dev/null &
    pids+=($!)
done
lport=$(free_port 127.0.0.1)
"$apilb" --listen "127.0.0.1:$lport" --upstream "127.0.0.2:$bport" --upstream "127.0.0.3:$bport" \
    --upstream "127.0.0.4:$bport" --workers 2 --admin-listen off --health-check none \
    --log-level error &
apid=$!
pids+=($apid)
sleep 0.5

: >"$out"
profile() { # name, then the load command
    local name=$1
    shift
    perf record -q -o "$work/$name.data" -p "$apid" -- sleep 4 >/dev/null 2>&1 &
    local perf_pid=$!
    sleep 0.2
    "$@" >/dev/null 2>&1 || true
    wait "$perf_pid" || true
    {
        echo "== $name: share of apilb's samples by where they ran"
        perf report -q -g none -i "$work/$name.data" --no-children --sort dso 2>/dev/null |
            awk 'NF >= 2 {printf "  %-8s %s\n", $1, $2}' | head -8 || true
        echo "   top symbols"
        perf report -q -g none -i "$work/$name.data" --no-children --sort sym 2>/dev/null |
            awk 'NF >= 2 {$1 = $1; print "  " $0}' | cut -c1-100 | head -15 || true
        echo
    } >>"$out"
}
profile bulk "$tool" bulk 127.0.0.1 "$lport" 3
profile pingpong "$tool" pingpong 127.0.0.1 "$lport" 40000
profile connrate "$tool" connrate 127.0.0.1 "$lport" 3 8
profile wrk wrk -t2 -c1000 -d3s "http://127.0.0.1:$lport/"
{
    echo "== the floor on one CPU (benchtool floor): a bare system call, and a round trip"
    echo "   between two processes over pipes (two process switches, four system calls)"
    taskset -c 0 "$tool" floor 20000 | sed 's/^/  /'
} >>"$out"
cat "$out"
