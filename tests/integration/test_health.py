# SPDX-License-Identifier: Apache-2.0
"""Integration scenarios of upstream health, draining, connection age and hot
swaps: real apilb, real TLS apiserver stand-ins, real curl."""

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

from harness import (Apilb, Backend, Fail, HttpsConn, TlsApiserver, check, closed_by_peer,
                     make_certs, metric, payload, readyz_failing, refused_addr, roundtrip, run,
                     scenario, tmpdir, whoami, write_atomic)


def curl_name(ca, port, path="/version"):
    p = subprocess.run(["curl", "-sS", "--fail", "--max-time", "5", "--cacert", ca,
                        "--resolve", "kubernetes:%d:127.0.0.1" % port,
                        "https://kubernetes:%d%s" % (port, path)],
                       capture_output=True, text=True, timeout=10)
    check(p.returncode == 0, "curl through apilb failed: %s" % p.stderr.strip())
    return p.stdout


def health_line(a, addr, to, start=0, timeout=5.0):
    return a.wait_log(r'upstream health changed.*upstream=%s .*to=%s' % (re.escape(addr), to),
                      timeout, start=start)


def held_on(a, ca, name, tries=12):
    """Kept-alive connections through apilb that landed on the named upstream."""
    held = []
    for _ in range(tries):
        c = HttpsConn(a.port, ca)
        if c.get("/version")[1] == name:
            held.append(c)
        else:
            c.close()
    check(held, "no connection landed on %s" % name)
    return held


@scenario
def readyz():
    """readyz checks over verified TLS: 500 makes an upstream unhealthy after
    --fall checks and 200 healthy again after --rise; 401/403 count as alive.
    An upstream whose readyz says it is shutting down (an apiserver in its
    shutdown delay) gets no new connections, but its open ones keep working
    (drain); one failing for another reason (etcd) has them closed."""
    d = tmpdir()
    ca, crt, key = make_certs(d)
    s = [TlsApiserver("127.0.0.%d" % i, crt, key, "api%d" % i) for i in (2, 3, 4)]
    a = Apilb(*sum((["--upstream", x.addr] for x in s), []), "--health-ca", ca,
              "--health-interval", "300ms", "--health-timeout", "250ms", "--rise", "2",
              "--fall", "2", health="readyz")
    try:
        for x in s:
            health_line(a, x.addr, "healthy")
        held = held_on(a, ca, "api2")
        mark = len(a.lines())
        t0 = time.time()
        s[0].readyz_body = readyz_failing("shutdown")
        s[0].readyz = 500
        line = health_line(a, s[0].addr, "unhealthy", mark)
        dt = time.time() - t0
        check('reason="readyz: HTTP 500 (shutting down)"' in line, "reason missing: %s" % line)
        check("draining=true" in line, "a shutting-down upstream is not drained: %s" % line)
        time.sleep(0.5)
        for c in held:
            check(c.get("/version") == (200, "api2"), "a draining connection was cut")
            c.close()
        # Not ready for another reason: its connections are closed, each at a
        # random time within --close-spread (5 s by default).
        held = held_on(a, ca, "api4")
        mark = len(a.lines())
        s[2].readyz_body = readyz_failing("etcd", "etcd-readiness")
        s[2].readyz = 500
        line = health_line(a, s[2].addr, "unhealthy", mark)
        check("closing=true" in line and "shutting down" not in line, "etcd failure: %s" % line)
        for c in held:
            check(c.closed(7), "a connection to an apiserver without etcd was kept")
            c.close()
        s[2].readyz_body = None
        s[2].readyz = 200
        health_line(a, s[2].addr, "healthy", mark)
        # Two failed checks, each within interval +-10% (+ the check itself).
        check(dt < 2 * 0.33 + 0.5, "unhealthy after %.2fs, expected <= ~0.7s" % dt)
        names = [curl_name(ca, a.port) for _ in range(20)]
        check("api2" not in names, "unhealthy upstream got new connections: %r" % names)
        s[1].readyz = 401
        s[2].readyz = 403
        mark = len(a.lines())
        t0 = time.time()
        s[0].readyz = 200
        health_line(a, s[0].addr, "healthy", mark)
        dt = time.time() - t0
        check(dt > 0.25, "healthy again after %.2fs: rise 2 not honoured" % dt)
        time.sleep(1.0)
        bad = [l for l in a.lines()[mark:] if "to=unhealthy" in l]
        check(not bad, "401/403 were not counted as alive: %s" % bad)
        check(s[1].readyz_hits > 3, "readyz of api3 checked only %d times" % s[1].readyz_hits)
    finally:
        a.stop()
        for x in s:
            x.stop()


@scenario
def all_unhealthy_keeps():
    """When every upstream fails its checks, their connections are kept
    (nowhere to move them; a node-side stall or a check problem is likelier
    than every apiserver failing): closes resume, spread, once one upstream
    is usable again."""
    d = tmpdir()
    ca, crt, key = make_certs(d)
    s = [TlsApiserver("127.0.0.%d" % i, crt, key, "api%d" % i) for i in (2, 3)]
    a = Apilb("--upstream", s[0].addr, "--upstream", s[1].addr, "--health-ca", ca,
              "--health-interval", "300ms", "--health-timeout", "250ms", "--rise", "1",
              "--fall", "2", "--close-spread", "2s", health="readyz", admin=True)
    try:
        for x in s:
            health_line(a, x.addr, "healthy")
        held = held_on(a, ca, "api2")
        mark = len(a.lines())
        s[1].readyz_body = readyz_failing("etcd", "etcd-readiness")
        s[1].readyz = 500
        health_line(a, s[1].addr, "unhealthy", mark)
        s[0].readyz_body = readyz_failing("etcd", "etcd-readiness")
        s[0].readyz = 500
        line = health_line(a, s[0].addr, "unhealthy", mark)
        t0 = time.time()
        a.wait_log(r"every upstream unhealthy: their connections are kept", 5, start=mark)
        time.sleep(3.0)  # past the 2 s spread window
        kept = sum(1 for c in held if c.get("/version") == (200, "api2"))
        print("both unhealthy: %d of %d connections to api2 kept after %.1fs" %
              (kept, len(held), time.time() - t0))
        check(kept == len(held), "connections closed with nowhere to go: %d of %d kept (%s)" %
              (kept, len(held), line))
        check(metric(a, "apilb_health_closes_held") == 1, "apilb_health_closes_held is not 1")
        mark = len(a.lines())
        s[1].readyz_body = None
        s[1].readyz = 200
        health_line(a, s[1].addr, "healthy", mark)
        a.wait_log(r"an upstream is usable again", 5, start=mark)
        for c in held:
            check(c.closed(4), "api2's connection was kept after api3 came back")
            c.close()
        check(metric(a, "apilb_health_closes_held") == 0, "apilb_health_closes_held is not 0")
        print("api3 back: api2's %d connections closed within the spread" % len(held))
    finally:
        a.stop()
        for x in s:
            x.stop()


@scenario
def tls_verify():
    """A certificate that does not verify against --health-ca fails the check;
    with every upstream unhealthy, connections still try each one. Replacing
    the --health-ca file with the right CA heals them without a restart."""
    d = tmpdir()
    ca, crt, key = make_certs(d)
    other_ca, _, _ = make_certs(tmpdir())
    health_ca = os.path.join(d, "health-ca.pem")
    shutil.copy(other_ca, health_ca)
    s = [TlsApiserver("127.0.0.%d" % i, crt, key, "api%d" % i) for i in (2, 3)]
    a = Apilb("--upstream", s[0].addr, "--upstream", s[1].addr, "--health-ca", health_ca,
              "--health-interval", "200ms", "--health-timeout", "150ms", "--fall", "1",
              health="readyz")
    try:
        for x in s:
            line = health_line(a, x.addr, "unhealthy")
            check("certificate" in line, "reason does not name the certificate: %s" % line)
        names = {curl_name(ca, a.port) for _ in range(10)}
        check(names <= {"api2", "api3"} and names, "all-unhealthy connections failed: %r" % names)
        mark = len(a.lines())
        shutil.copy(ca, health_ca + ".new")
        os.rename(health_ca + ".new", health_ca)
        t0 = time.time()
        a.wait_log(r'--health-ca changed: health checks use the new CA', 5, start=mark)
        for x in s:
            health_line(a, x.addr, "healthy", start=mark)
        print("--health-ca replaced: upstreams healthy %.2fs later" % (time.time() - t0))
    finally:
        a.stop()
        for x in s:
            x.stop()


@scenario
def refused():
    """A refusing upstream turns unhealthy; a tcp check is enough for it."""
    b = Backend("127.0.0.2")
    dead = refused_addr("127.0.0.3")
    a = Apilb("--upstream", b.addr, "--upstream", dead, "--health-interval", "200ms",
              "--health-timeout", "150ms", "--fall", "2", health="tcp")
    try:
        line = health_line(a, dead, "unhealthy")
        check("Connection refused" in line, "reason: %s" % line)
        health_line(a, b.addr, "healthy")
    finally:
        a.stop()
        b.stop()


@scenario
def blackhole_live():
    """A client whose upstream black-holes is disconnected within
    interval x fall + timeout, and its reconnect lands on a healthy upstream."""
    bs = [Backend("127.0.0.2", "x", backlog=4), Backend("127.0.0.3", "y", backlog=4)]
    interval, timeout, fall = 0.5, 0.3, 2
    a = Apilb("--upstream", bs[0].addr, "--upstream", bs[1].addr,
              "--health-interval", "500ms", "--health-timeout", "300ms", "--fall", str(fall),
              "--close-spread", "0", health="tcp")  # the health checks' own delay, unspread
    try:
        name, s = whoami(a.port, keep=True)
        victim = bs[0] if name == "x" else bs[1]
        roundtrip(s)
        t0 = time.time()
        victim.freeze()
        check(closed_by_peer(s, 5), "client on a black-holed upstream was not disconnected")
        dt = time.time() - t0
        limit = interval * 1.1 * fall + timeout + 0.4
        print("black-holed upstream: client disconnected after %.2fs (limit %.2fs)" % (dt, limit))
        check(dt <= limit, "disconnected after %.2fs, limit %.2fs" % (dt, limit))
        s.close()
        t1 = time.time()
        other = whoami(a.port)
        check(other != victim.name, "reconnect went to the black-holed upstream")
        print("reconnected to %s in %.3fs" % (other, time.time() - t1))
    finally:
        a.stop()
        for b in bs:
            b.stop()


def hold_until(a, backend, n, others):
    """Opens connections until backend holds n of them; returns (mine, rest)."""
    mine, rest = [], []
    for _ in range(20 * n):
        name, s = whoami(a.port, keep=True)
        (mine if name == backend.name else rest).append(s)
        if len(mine) == n:
            return mine, rest
    raise Fail("could not place %d connections on %s" % (n, backend.name))


def close_times(socks, t0, timeout):
    """Seconds after t0 at which each socket was closed by the peer."""
    out = [None] * len(socks)

    def watch(i, s):
        if closed_by_peer(s, timeout):
            out[i] = time.time() - t0

    ts = [threading.Thread(target=watch, args=(i, s)) for i, s in enumerate(socks)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout + 1)
    return out


@scenario
def drain():
    """A removed upstream takes no new connections and its open ones are
    closed over the second half of --drain-timeout, spread out."""
    d = tmpdir()
    path = os.path.join(d, "ups")
    A, B = Backend("127.0.0.2", "A"), Backend("127.0.0.3", "B")
    with open(path, "w") as f:
        f.write("%s\n%s\n" % (A.addr, B.addr))
    a = Apilb("--upstreams-file", path, "--drain-timeout", "2s")
    try:
        onA, onB = hold_until(a, A, 10, [B])
        write_atomic(path, "%s\n" % B.addr)
        t0 = time.time()
        a.signal(signal.SIGHUP)
        a.wait_log(r'upstream removed" upstream=%s' % re.escape(A.addr))
        for _ in range(10):
            check(whoami(a.port) == "B", "removed upstream got a new connection")
        for s in onA:
            roundtrip(s)  # draining connections still work
        times = close_times(onA, t0, 4)
        check(all(t is not None for t in times), "drained connections not closed: %r" % times)
        print("drain closes at %s s" % ", ".join("%.2f" % t for t in sorted(times)))
        check(min(times) >= 0.9 and max(times) <= 2.4, "closes outside [1s, 2s]: %r" % times)
        check(max(times) - min(times) >= 0.3, "closes not spread: %r" % times)
        for s in onB:
            roundtrip(s)  # connections to the remaining upstream untouched
            s.close()
        a.wait_log(r'upstream drained" upstream=%s' % re.escape(A.addr), 3)
    finally:
        a.stop()
        A.stop()
        B.stop()


@scenario
def max_age():
    """--max-connection-age closes old connections with jitter; young ones stay."""
    b = Backend("127.0.0.2")
    a = Apilb("--upstream", b.addr, "--max-connection-age", "1s")
    try:
        socks = [whoami(a.port, keep=True)[1] for _ in range(12)]
        t0 = time.time()
        times = close_times(socks, t0, 3)
        check(all(t is not None for t in times), "old connections not closed: %r" % times)
        print("age closes at %s s" % ", ".join("%.2f" % t for t in sorted(times)))
        check(min(times) >= 0.6 and max(times) <= 1.5, "closes outside [0.75s, 1s]: %r" % times)
        check(max(times) - min(times) >= 0.05, "closes not spread: %r" % times)
        a.wait_log(r'reason=max-age')
    finally:
        a.stop()
        b.stop()


@scenario
def hotswap():
    """100+ table swaps (add, remove, reorder) under a load of short and long
    connections: no failed or reset connection, long ones intact."""
    d = tmpdir()
    path = os.path.join(d, "ups")
    bs = [Backend("127.0.0.%d" % (2 + i % 3), "b%d" % i) for i in range(4)]
    with open(path, "w") as f:
        f.write("\n".join(b.addr for b in bs) + "\n")
    a = Apilb("--upstreams-file", path, "--drain-timeout", "5m", "--shutdown-timeout", "1s")
    stop = threading.Event()
    failures, shorts, longs = [], [0], [0]

    def short_client():
        while not stop.is_set():
            try:
                name, s = whoami(a.port, keep=True)
                roundtrip(s, b"x" * 100)
                s.close()
                shorts[0] += 1
            except Exception as e:  # noqa: BLE001 - counted
                failures.append("short: %r" % e)

    def long_client(i):
        try:
            s = socket.create_connection(("127.0.0.1", a.port), timeout=30)
            s.sendall(b"echo\n")
            data = payload(4 << 20, seed=i)
            got = bytearray()
            for off in range(0, len(data), 64 << 10):
                s.sendall(data[off:off + (64 << 10)])
                while len(got) < off + (64 << 10) - (256 << 10):
                    got += s.recv(1 << 16)
                time.sleep(0.01)
            s.shutdown(socket.SHUT_WR)
            while True:
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                got += chunk
            s.close()
            if bytes(got) != data:
                failures.append("long %d: %d bytes back, corrupted" % (i, len(got)))
            longs[0] += 1
        except Exception as e:  # noqa: BLE001 - counted
            failures.append("long %d: %r" % (i, e))

    try:
        threads = [threading.Thread(target=short_client) for _ in range(4)]
        threads += [threading.Thread(target=long_client, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        rng = random.Random(42)
        swaps = 0
        prev = set(bs)
        for i in range(130):
            # A different set every time (the order in the file varies too).
            while True:
                pick = rng.sample(bs, rng.randint(1, len(bs)))
                if set(pick) != prev:
                    break
            prev = set(pick)
            write_atomic(path, "".join("%s\n" % b.addr for b in pick))
            a.signal(signal.SIGHUP)
            time.sleep(0.04)
        stop.set()
        for t in threads:
            t.join(120)
        swaps = len([l for l in a.lines() if 'table published' in l])
        print("table swaps: %d, short connections: %d, long connections: %d, failures: %d" %
              (swaps, shorts[0], longs[0], len(failures)))
        check(swaps >= 100, "only %d swaps happened" % swaps)
        check(not failures, "%d failures: %s" % (len(failures), failures[:5]))
        check(longs[0] == 4, "long connections finished: %d" % longs[0])
    finally:
        stop.set()
        a.stop()
        for b in bs:
            b.stop()


if __name__ == "__main__":
    run()
