#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# apilb side by side with nginx (stream) and HAProxy (TCP mode), and a direct
# connection, in one run on this machine: bulk throughput, round-trip latency
# (client, proxy and backend pinned to one CPU), new connections per second,
# keep-alive HTTP requests per second (wrk -c 1000), memory with idle
# connections, CPU per GB. Repeats each measurement and reports medians,
# min-max and ratios: tests/bench/results/latest.{json,md,svg}.
# Beside them, measuring sticks that show what no relay beats here (the
# floors): a minimal io_uring relay and the kernel's own sockmap redirection
# for latency, a minimal splice relay and sockmap for bulk; and the whole
# machine's CPU per connection and per request, which bounds the rates.
#
#   bash tests/bench/run.sh            full run (installs nginx, haproxy, wrk, liburing;
#                                      run as root for the sockmap floor)
#   bash tests/bench/run.sh --smoke    a few seconds of each, for CI: proves
#                                      every piece works, asserts no speed
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
smoke=
[ "${1:-}" = --smoke ] && smoke=1
out=${BENCH_OUT:-$root/tests/bench/results}
if [ -z "${BENCH_NO_SETUP:-}" ]; then
    bash "$root/scripts/deps.sh" core bench
    cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$root/build" -j"$(nproc)" >/dev/null
fi
apilb=${APILB:-$root/build/apilb}
tool=${BENCHTOOL:-$root/build/tests/bench/benchtool}
ulimit -n "$(ulimit -Hn)"

if [ -n "$smoke" ]; then
    reps=1 secs=1 pings=2000 idle_counts="100 300" wrk_secs=1 wrk_conns=100 stall_cap=256
else
    reps=${BENCH_REPS:-3} secs=${BENCH_SECS:-5} pings=20000 idle_counts="1000 3000 9000"
    wrk_secs=5 wrk_conns=1000 stall_cap=1024
fi
. "$root/scripts/procs.sh"
proxy_pid=

wait_port() { # host port [pid: give up as soon as it has exited]
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
        [ -z "${3:-}" ] || kill -0 "$3" 2>/dev/null || return 1
        sleep 0.05
    done
    echo "run.sh: nothing listens on $1:$2" >&2
    return 1
}

# Backends: the same server on 127.0.0.2-4, one port.
bport=$(free_port 127.0.0.2)
for i in 2 3 4; do
    "$tool" server "127.0.0.$i" "$bport" >/dev/null &
    pids+=($!)
done
for i in 2 3 4; do wait_port "127.0.0.$i" "$bport"; done
backend_pids="${pids[*]}"

# --- the proxies ------------------------------------------------------------
start_nginx() {
    local port=$1
    mkdir -p "$work/nginx"
    cat >"$work/nginx/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 2;
worker_rlimit_nofile 20000;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 20000; }
stream {
    upstream backends {
        least_conn;
        server 127.0.0.2:$bport;
        server 127.0.0.3:$bport;
        server 127.0.0.4:$bport;
    }
    server {
        listen 127.0.0.1:$port reuseport;
        proxy_pass backends;
        proxy_connect_timeout 1s;
        proxy_timeout 1h;
        tcp_nodelay on;
    }
}
EOF
    nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
    proxy_pid=$!
}
start_haproxy() {
    local port=$1
    cat >"$work/haproxy.cfg" <<EOF
global
    nbthread 2
    maxconn 9800
defaults
    mode tcp
    timeout connect 1s
    timeout client 1h
    timeout server 1h
frontend fe
    bind 127.0.0.1:$port
    default_backend be
backend be
    balance leastconn
    server s2 127.0.0.2:$bport
    server s3 127.0.0.3:$bport
    server s4 127.0.0.4:$bport
EOF
    haproxy -f "$work/haproxy.cfg" -db &
    proxy_pid=$!
}
start_apilb() {
    local port=$1
    "$apilb" --listen "127.0.0.1:$port" --upstream "127.0.0.2:$bport" \
        --upstream "127.0.0.3:$bport" --upstream "127.0.0.4:$bport" --workers 2 \
        --admin-listen off --health-check none --log-level warn &
    proxy_pid=$!
}

# All processes of a proxy (nginx has a master and workers).
proxy_procs() {
    [ -n "$proxy_pid" ] || return 0
    echo "$proxy_pid $(pgrep -P "$proxy_pid" || true)"
}
# Sum of a /proc/PID/status field (in KiB) over the proxy's processes.
status_kib() {
    local total=0 p
    for p in $(proxy_procs); do
        total=$((total + $(awk -v f="$1:" '$1 == f {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
    done
    echo "$total"
}
rss_kib() { status_kib VmRSS; }
anon_kib() { status_kib RssAnon; }
cpu_ticks() {
    local total=0 p
    for p in $(proxy_procs); do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}
kv() { sed -n "s/^$1=//p"; }
# The whole machine's busy and total CPU ticks (every CPU, every process).
sys_ticks() { awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
# Records the machine's CPU per operation between two sys_ticks readings,
# and how busy it was: rates are bound by CPU only when it is near 100 %.
record_sys() { # proxy metric rep operations "busy0 total0" "busy1 total1"
    local b0 t0 b1 t1
    read -r b0 t0 <<<"$5"
    read -r b1 t1 <<<"$6"
    record "$1" "sys_us_per_$2" "$3" "$(python3 -c "print(($b1-$b0)/$hz*1e6/max(1,$4))")"
    record "$1" "busy_pct_$2" "$3" "$(python3 -c "print(100*($b1-$b0)/max(1,$t1-$t0))")"
}

results="$work/results.jsonl"
: >"$results"
record() { # proxy metric rep value
    printf '{"proxy":"%s","metric":"%s","rep":%s,"value":%s}\n' "$1" "$2" "$3" "$4" >>"$results"
}

# Round-trip latency with the backends, the relay's processes (the rest of
# the arguments) and the client all on CPU 0; the relay is let go after.
pinned_latency() { # name host port rep [pids of the relay]
    local name=$1 host=$2 port=$3 rep=$4 o p
    shift 4
    for p in $backend_pids "$@"; do taskset -a -pc 0 "$p" >/dev/null; done
    o=$(taskset -c 0 "$tool" pingpong "$host" "$port" "$pings")
    for p in $backend_pids "$@"; do taskset -a -pc 0-"$(($(nproc) - 1))" "$p" >/dev/null; done
    record "$name" p50_us "$rep" "$(echo "$o" | kv p50_us)"
    record "$name" p99_us "$rep" "$(echo "$o" | kv p99_us)"
}

hz=$(getconf CLK_TCK)

# Bulk throughput, and the relay's CPU per GB (not for direct).
measure_bulk() { # name host port rep
    local c0 c1 o bytes
    c0=$(cpu_ticks)
    o=$("$tool" bulk "$2" "$3" "$secs")
    c1=$(cpu_ticks)
    bytes=$(echo "$o" | kv bytes)
    record "$1" bulk_gbps "$4" "$(echo "$o" | kv gbps)"
    # (sockmap_relay's work runs in kernel threads, not in its process.)
    case $1 in direct | sockmap_relay) ;; *)
        record "$1" cpu_s_per_gb "$4" "$(python3 -c "print(($c1-$c0)/$hz/($bytes/1e9))")" ;;
    esac
}

# What an upstream that stops reading lets a client pin in the relay: the
# bytes the relay takes before it stops taking them (the socket buffers and
# its own, if it has backpressure; the cap, $stall_cap MiB, if it has none).
measure_stall() { # name host port rep
    local o
    o=$("$tool" stall "$2" "$3" "$stall_cap")
    record "$1" stall_mib "$4" "$(echo "$o" | kv mib)"
    record "$1" stall_capped "$4" "$(echo "$o" | kv capped)"
}

# Keep-alive HTTP requests per second, and the machine's CPU per request.
measure_requests() { # name host port rep
    local s0 s1 o
    s0=$(sys_ticks)
    o=$(wrk -t2 -c"$wrk_conns" -d"${wrk_secs}s" "http://$2:$3/" 2>&1)
    s1=$(sys_ticks)
    record "$1" http_rps "$4" "$(echo "$o" | awk '/Requests\/sec/ {print $2}')"
    record_sys "$1" req "$4" "$(echo "$o" | awk '/requests in/ {print $1}')" "$s0" "$s1"
}

measure() {
    local name=$1 host=$2 port=$3 rep=$4
    measure_bulk "$name" "$host" "$port" "$rep"
    local tp="" c0 c1 s0 s1 o n
    [ "$name" = direct ] || tp=$(proxy_procs)
    pinned_latency "$name" "$host" "$port" "$rep" $tp
    # New connections per second, and CPU per connection (the proxy's, and
    # the machine's).
    c0=$(cpu_ticks)
    s0=$(sys_ticks)
    o=$("$tool" connrate "$host" "$port" "$secs" 8)
    s1=$(sys_ticks)
    c1=$(cpu_ticks)
    n=$(echo "$o" | kv conns)
    record "$name" conns_per_s "$rep" "$(echo "$o" | kv conns_per_s)"
    [ "$name" = direct ] || record "$name" cpu_us_per_conn "$rep" \
        "$(python3 -c "print(($c1-$c0)/$hz*1e6/max(1,$n))")"
    record_sys "$name" conn "$rep" "$n" "$s0" "$s1"
    # The proxies' keep-alive requests: side by side (requests_side_by_side).
    [ "$name" = direct ] && measure_requests "$name" "$host" "$port" "$rep"
    measure_stall "$name" "$host" "$port" "$rep"
    # Memory: idle proxied connections.
    [ "$name" = direct ] && return 0
    local before after
    sleep 1 # let the load above settle (memory given back, sockets closed)
    before=$(rss_kib)
    for n in $idle_counts; do
        coproc HOLD { "$tool" idle "$host" "$port" "$n"; }
        read -r _ <&"${HOLD[0]}"
        sleep 0.3
        after=$(rss_kib)
        record "$name" "rss_per_conn_b_$n" "$rep" "$(python3 -c "print(($after-$before)*1024/$n)")"
        exec {HOLD[1]}>&-
        wait "$HOLD_PID" 2>/dev/null || true
        sleep 0.3
    done
}

# The floors: relays written only to measure (tests/bench/*relay.c), each
# started on its own, on what it is the floor of:
#   uring_relay    user space, one system call per direction: latency and
#                  keep-alive requests
#   splice_relay   user space, a thread per direction in splice(2): bulk
#   sockmap_relay  in the kernel, no process on the data path: both
# and each on what a stalled upstream makes it hold.
# A relay that cannot run here (no CAP_BPF) leaves its rows out.
floor_relays="uring_relay:${URINGRELAY:-$root/build/tests/bench/uringrelay}:latency,requests
splice_relay:${SPLICERELAY:-$root/build/tests/bench/splicerelay}:bulk
sockmap_relay:${SOCKMAPRELAY:-$root/build/tests/bench/sockmaprelay}:bulk,latency"
measure_floors() {
    local rep=$1 name bin what port saved=$proxy_pid
    while IFS=: read -r -u 3 name bin what; do
        [ -x "$bin" ] || continue
        port=$(free_port 127.0.0.1)
        "$bin" 127.0.0.1 "$port" 127.0.0.2 "$bport" &
        proxy_pid=$!
        pids+=("$proxy_pid")
        if ! wait_port 127.0.0.1 "$port" "$proxy_pid"; then
            echo "run.sh: $name did not start (see above): no $name rows" >&2
            kill "$proxy_pid" 2>/dev/null || true
            continue
        fi
        case ",$what," in *,bulk,*) measure_bulk "$name" 127.0.0.1 "$port" "$rep" ;; esac
        case ",$what," in *,latency,*) pinned_latency "$name" 127.0.0.1 "$port" "$rep" "$proxy_pid" ;; esac
        case ",$what," in *,requests,*) measure_requests "$name" 127.0.0.1 "$port" "$rep" ;; esac
        measure_stall "$name" 127.0.0.1 "$port" "$rep"
        kill "$proxy_pid"
        wait "$proxy_pid" 2>/dev/null || true
    done 3<<<"$floor_relays"
    proxy_pid=$saved
}

# Keep-alive requests of the three proxies back to back: all three started,
# idle but the one measured, the order turned each repetition (each proxy
# takes each place once in three repetitions). On a virtual
# machine the host's speed drifts over minutes (its neighbours); measured a
# minute or two apart, as the other workloads are, that drift read as a
# difference between the proxies (on 2026-11-28 nginx's medians moved from
# 53,000 to 80,000 req/s between runs, its CPU per request from 25 to 35 us).
requests_side_by_side() { # rep
    local rep=$1 name i saved=$proxy_pid
    local -a order=(nginx haproxy apilb) turned=()
    local -A port_of pid_of
    for i in 0 1 2; do turned+=("${order[$(((i + rep - 1) % 3))]}"); done
    for name in "${turned[@]}"; do
        port_of[$name]=$(free_port 127.0.0.1)
        "start_$name" "${port_of[$name]}"
        pid_of[$name]=$proxy_pid
        pids+=("$proxy_pid")
        wait_port 127.0.0.1 "${port_of[$name]}" "$proxy_pid"
    done
    for name in "${turned[@]}"; do
        sleep 0.5 # the previous run's 1,000 connections closed on every side
        measure_requests "$name" 127.0.0.1 "${port_of[$name]}" "$rep"
    done
    for name in "${turned[@]}"; do
        kill "${pid_of[$name]}"
        wait "${pid_of[$name]}" 2>/dev/null || true
    done
    proxy_pid=$saved
}

for rep in $(seq "$reps"); do
    measure direct 127.0.0.2 "$bport" "$rep"
    measure_floors "$rep"
    for name in nginx haproxy apilb; do
        port=$(free_port 127.0.0.1)
        "start_$name" "$port"
        pids+=("$proxy_pid")
        wait_port 127.0.0.1 "$port"
        sleep 0.3
        # Idle RSS: started, configured, no connection yet.
        record "$name" idle_rss_kib "$rep" "$(rss_kib)"
        record "$name" idle_anon_kib "$rep" "$(anon_kib)"
        measure "$name" 127.0.0.1 "$port" "$rep"
        kill "$proxy_pid"
        wait "$proxy_pid" 2>/dev/null || true
        echo "run.sh: $name repetition $rep done" >&2
    done
    requests_side_by_side "$rep"
    echo "run.sh: keep-alive requests side by side, repetition $rep done" >&2
done

mkdir -p "$out"
cp "$results" "$out/samples.jsonl" # report.py SAMPLES OUT redraws the tables
python3 "$root/tests/bench/report.py" "$results" "$out" ${smoke:+--smoke}
