#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""netemu, the tc netem stand-in: the delays, jitter and drops it is told
are the ones real sockets see through it. Each scenario runs in a network
namespace of its own (unshare -n) with a far namespace behind a link."""

import os
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
sys.path.insert(0, os.path.dirname(__file__))
from harness import LISTING, Fail, check, reexec_in_netns, run, scenario  # noqa: E402
import delaynet  # noqa: E402
from delaynet import Link, Netns, connect_rtt  # noqa: E402

NEAR, FAR = "10.231.0.1", "10.231.0.2"
SO_TIMESTAMPNS = 35  # asm-generic/socket.h


def far_listener(ns, far=FAR):
    """A TCP listener on far:0 in ns whose accepted sockets are closed."""
    s = ns.socket()
    s.bind((far, 0))
    s.listen(1024)

    def drain():
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            c.close()

    threading.Thread(target=drain, daemon=True).start()
    return s, s.getsockname()[1]


def one_way(send_sock, dest, recv_sock, n=200):
    """One-way delays (s) of n UDP datagrams, each carrying its send time
    (both ends on this host: one clock), received at the kernel's receive
    timestamp (SO_TIMESTAMPNS), so the test's own scheduling adds little."""
    got = []
    recv_sock.settimeout(0.5)
    recv_sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)

    def reader():
        while True:
            try:
                d, anc, _, _ = recv_sock.recvmsg(64, 64)
            except OSError:
                return
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", data[:16])
                    got.append(sec + nsec / 1e9 - float(d.decode()))

    t = threading.Thread(target=reader)
    t.start()
    for _ in range(n):
        send_sock.sendto(b"%.9f" % time.time(), dest)
        time.sleep(0.002)
    t.join()
    return got


def udp_pair(ns):
    """UDP sockets on NEAR:0 here and FAR:0 in ns."""
    here = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    here.bind((NEAR, 0))
    there = ns.socket(kind=socket.SOCK_DGRAM)
    there.bind((FAR, 0))
    return here, there


def setup(extra=(), near=NEAR, far=FAR):
    ns = Netns()
    return ns, Link(ns, near, far, extra)


def rtt_excess(extra, want_s):
    """Median connect round trip through a link with extra flags, minus the
    same through a link without delay (the TUN path's own cost)."""
    ns0, link0 = setup((), "10.231.1.1", "10.231.1.2")
    _, port = far_listener(ns0, "10.231.1.2")
    connect_rtt("10.231.1.2", port, 5)
    base, _ = connect_rtt("10.231.1.2", port, 60)
    link0.stop()
    ns, link = setup(extra)
    _, port = far_listener(ns)
    connect_rtt(FAR, port, 5)
    med, _ = connect_rtt(FAR, port, 60)
    excess = med - base
    link.stop()
    ns.stop()
    print("configured %.3f ms: median round trip %.3f ms (%.3f ms without delay), excess "
          "%.3f ms" % (want_s * 1e3, med * 1e3, base * 1e3, excess * 1e3))
    return excess


@scenario
def delay():
    # Two round trips pay each direction once: 0.1 + 0.1 ms and 1 + 1 ms.
    for one_way_ms, want in ((0.1, 0.0002), (1, 0.002)):
        ex = rtt_excess(["--delay", "%gms" % one_way_ms], want)
        # Each release may come some 50-100 us late (a timerfd wake-up on a
        # loaded machine): a round trip has two.
        check(want - 30e-6 <= ex <= want + 250e-6,
              "connect round trip %.3f ms more than without delay, configured %.3f ms"
              % (ex * 1e3, want * 1e3))


@scenario
def asymmetric():
    ns, link = setup(["--delay-ab", "1.5ms", "--delay-ba", "300us"])
    here, there = udp_pair(ns)
    ab = statistics.median(one_way(here, there.getsockname(), there))
    ba = statistics.median(one_way(there, here.getsockname(), here))
    print("one way: a->b %.3f ms (1.5 configured), b->a %.3f ms (0.3 configured)"
          % (ab * 1e3, ba * 1e3))
    check(1.47e-3 <= ab <= 1.65e-3, "a->b took %.3f ms, configured 1.5" % (ab * 1e3))
    check(0.27e-3 <= ba <= 0.45e-3, "b->a took %.3f ms, configured 0.3" % (ba * 1e3))


@scenario
def jitter():
    ns, link = setup(["--delay-ab", "1ms", "--jitter-ab", "500us"])
    here, there = udp_pair(ns)
    d = sorted(one_way(here, there.getsockname(), there, 400))
    lo = d[len(d) // 10]
    med = d[len(d) // 2]
    iqr = d[3 * len(d) // 4] - d[len(d) // 4]
    print("1 ms +- 0.5 ms: median %.3f ms, median - 10th percentile %.3f ms, interquartile range "
          "%.3f ms (uniform: 1, 0.4, 0.5)" % (med * 1e3, (med - lo) * 1e3, iqr * 1e3))
    # Spreads below the median and in the middle, not absolute times nor the top tail: a loaded
    # machine delays packets, it never hurries one.
    check(0.95e-3 <= med <= 1.3e-3, "median %.3f ms, want about 1" % (med * 1e3))
    check(0.3e-3 <= med - lo <= 0.5e-3, "median - 10th %.3f ms, want about 0.4" % ((med - lo) * 1e3))
    check(0.4e-3 <= iqr <= 0.6e-3, "interquartile range %.3f ms, want about 0.5" % (iqr * 1e3))


@scenario
def drop():
    ns, link = setup(["--drop-ab", "50%"])
    here, there = udp_pair(ns)
    got = len(one_way(here, there.getsockname(), there, 400))
    back = len(one_way(there, here.getsockname(), here, 100))
    st = link.stats()
    print("drop 50%%: %d of 400 arrived (netemu: %s); the other direction: %d of 100"
          % (got, st, back))
    check(150 <= got <= 250, "%d of 400 datagrams arrived with 50%% drop" % got)
    check(back == 100, "%d of 100 arrived the other way (no drop configured)" % back)
    # The kernel's own packets (IPv6 link-up chatter) may add a few.
    check(400 <= st["ab_dropped"] + st["ab_passed"] <= 410, "netemu counted %s" % st)


@scenario
def runtime_set():
    ns, link = setup()
    _, port = far_listener(ns)
    base, _ = connect_rtt(FAR, port, 30)
    link.set("both", delay="1ms")
    slow, _ = connect_rtt(FAR, port, 30)
    link.set("ab", drop=1)
    s = socket.socket()
    s.settimeout(0.5)
    t0 = time.time()
    try:
        s.connect((FAR, port))
        raise Fail("connected through a link dropping everything")
    except socket.timeout:
        pass
    link.set("ab", drop=0, delay="0us")
    link.set("ba", delay="0us")
    again, _ = connect_rtt(FAR, port, 30)
    err = link.command("set ab delay=fast")
    print("round trip %.3f ms, after set delay=1ms %.3f ms, black hole: connect timed out "
          "after %.2fs, restored %.3f ms; bad command: %s"
          % (base * 1e3, slow * 1e3, time.time() - t0, again * 1e3, err))
    check(slow - base >= 1.95e-3, "set delay=1ms: round trip only %.3f ms" % (slow * 1e3))
    check(again < base + 0.3e-3, "restored round trip %.3f ms" % (again * 1e3))
    check(err.startswith("error: delay=fast: not a duration"), "bad set answered %r" % err)


@scenario
def bad_flags():
    exe = delaynet.NETEMU
    cases = [
        (["--tun-a", "a", "--tun-b", "b", "--delay-ab", "2xs"],
         "netemu: --delay-ab=2xs: not a duration"),
        (["--tun-a", "a", "--tun-b", "b", "--drop", "1.5"], "netemu: --drop=1.5: not a probability"),
        (["--tun-a", "a", "--tun-b", "b", "--delay", "61s"], "netemu: --delay=61s: not a duration"),
        (["--tun-a", "a"], "netemu: --tun-a and --tun-b are required"),
        (["--tun-a", "a", "--tun-b", "b", "--latency", "1ms"], "netemu: --latency: unknown option"),
        (["--tun-a", "a", "--tun-b", "b", "--delay"], "netemu: --delay: needs a value"),
        (["--tun-a", "x" * 16, "--tun-b", "b"], "a device name of 1..15 characters"),
        (["--tun-a", "a", "--tun-b", "b", "--netns-b", "/nonexistent/ns"],
         "--tun-b b in /nonexistent/ns: cannot open the namespace"),
    ]
    for args, want in cases:
        p = subprocess.run([exe, *args], capture_output=True, text=True, timeout=10)
        first = p.stderr.splitlines()[0] if p.stderr else ""
        print("%s -> exit %d: %s" % (" ".join(args), p.returncode, first))
        check(p.returncode in (1, 2) and want in p.stderr,
              "%s: exit %d, stderr %r; want %r" % (args, p.returncode, p.stderr, want))


if __name__ == "__main__":
    if not LISTING and sys.argv[1:] != ["bad_flags"]:
        reexec_in_netns(__file__)
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    run()
