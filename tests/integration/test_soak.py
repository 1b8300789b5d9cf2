# SPDX-License-Identifier: Apache-2.0
"""A bounded soak: steady mixed load (short and long connections) while the
upstream table is swapped every second and one upstream's health flaps
(its listener goes away and comes back). Samples apilb's RSS and descriptor
count; they must stay flat, and no client connection may fail but those the
flapper reset in its accept queue when its listener went (the clients speak
plaintext, which apilb does not replay elsewhere: only a TLS ClientHello is);
apilb counts each of those in apilb_upstream_failed_connections_total.
SOAK_SECONDS sets the length (CI: 120; longer on demand)."""

import os
import signal
import socket
import threading
import time

from harness import Apilb, Backend, check, metric, run, scenario, tmpdir, write_atomic
from test_faults import Load


def status(pid):
    with open("/proc/%d/status" % pid) as f:
        rss = int([l for l in f if l.startswith("VmRSS")][0].split()[1])
    return rss, len(os.listdir("/proc/%d/fd" % pid))


@scenario
def soak():
    seconds = float(os.environ.get("SOAK_SECONDS", "120"))
    d = tmpdir()
    path = os.path.join(d, "ups")
    bs = [Backend("127.0.0.%d" % (2 + i % 3), "b%d" % i) for i in range(4)]
    flapper = bs[3]
    write_atomic(path, "".join("%s\n" % b.addr for b in bs))
    a = Apilb("--upstreams-file", path, "--health-interval", "300ms", "--health-timeout",
              "200ms", "--fall", "1", "--rise", "1", "--close-unhealthy=false",
              "--drain-timeout", "5m", health="tcp", log_level="info", admin=True)
    stop = threading.Event()
    samples = []

    def churn():
        i = 0
        while not stop.is_set():
            keep = [b for j, b in enumerate(bs) if (i + j) % 4 != 0] or bs
            write_atomic(path, "".join("%s\n" % b.addr for b in keep))
            a.signal(signal.SIGHUP)
            i += 1
            stop.wait(1.0)

    def flap():
        up = True
        while not stop.wait(3.0):
            if up:
                flapper.sock.close()
            else:
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((flapper.host, flapper.port))
                s.listen(128)
                s.settimeout(0.05)
                flapper.sock = s
                threading.Thread(target=flapper._accept, daemon=True).start()
            up = not up

    try:
        time.sleep(1)
        base = status(a.proc.pid)
        load = Load(a.port, shorts=4, longs=4, long_bytes=1 << 30)
        ts = [threading.Thread(target=churn), threading.Thread(target=flap)]
        for t in ts:
            t.start()
        end = time.time() + seconds
        while time.time() < end:
            time.sleep(5)
            samples.append(status(a.proc.pid))
        stop.set()
        for t in ts:
            t.join(10)
        load.finish()
        time.sleep(1.5)
        after = status(a.proc.pid)
        swaps = sum("table published" in l for l in a.lines())
        flaps = sum("upstream health changed" in l for l in a.lines())
        rss = [s[0] for s in samples]
        print("soak %.0fs: %d short connections, %d long, %d failed; %d table swaps, %d health "
              "changes; RSS %d KiB at start, %d-%d KiB under load, %d KiB after; fds %d at start, "
              "%d after" % (seconds, load.ok, len(load.long_results), len(load.failed), swaps,
                            flaps, base[0], min(rss), max(rss), after[0], base[1], after[1]))
        # Only clients that never got an answer, each counted by apilb as a
        # connection an upstream (the flapper's accept queue) failed before
        # its first byte; none broke after an answer. The per-upstream
        # counters go with the pruned flapper: the process-wide sum is read.
        early = metric(a, 'apilb_connections_failed_by_upstream_total{phase="before_answer"}')
        late = metric(a, 'apilb_connections_failed_by_upstream_total{phase="after_answer"}')
        print("connections upstreams reset before answering: %d, after: %d" % (early, late))
        check(all(f[1] is None for f in load.failed) and len(load.failed) <= early,
              "client failures not explained by resets before an answer (%d counted): %r"
              % (early, load.failed[:3]))
        check(late == 0, "%d connections failed after their upstream had answered" % late)
        check(all(r[1] for r in load.long_results), "long connections failed: %r" %
              [r for r in load.long_results if not r[1]][:3])
        check(swaps >= seconds * 0.8, "only %d swaps" % swaps)
        check(flaps >= 4, "health did not flap (%d changes)" % flaps)
        # Flat: the second half of the run grows no more than 2 MiB over the first half.
        half = rss[len(rss) // 2:]
        check(max(half) - min(rss[:len(rss) // 2] or half) < 2048,
              "RSS grows under steady load: %r" % rss)
        check(after[1] <= base[1] + 16, "descriptors leaked: %d -> %d" % (base[1], after[1]))
    finally:
        stop.set()
        a.stop()
        for b in bs:
            b.stop()


if __name__ == "__main__":
    run()
