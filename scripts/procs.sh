# SPDX-License-Identifier: Apache-2.0
# Sourced by the demo and the benchmark scripts: a scratch directory ($work),
# the children they start (add each PID to $pids; all are killed and reaped
# on exit, the directory removed) and free_port HOST (a port the kernel
# reports free on HOST).
work=$(mktemp -d)
pids=()
procs_cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap procs_cleanup EXIT
free_port() {
    python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$1"
}
