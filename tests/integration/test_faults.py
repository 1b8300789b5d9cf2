# SPDX-License-Identifier: Apache-2.0
"""Fault scenarios with figures: apiservers killed, black-holed, slowed,
restarted, all down then one back; hostile clients; signals under load.
Each prints its measured figures; each asserts that nothing was lost on
connections that were not to the failed upstream."""

import os
import random
import re
import resource
import signal
import socket
import struct
import sys
import threading
import time

from harness import (Apilb, Backend, Fail, check, closed_by_peer, exchange, payload, roundtrip, run,
                     scenario, whoami)


class Load:
    """Client threads doing short whoami+echo connections in a loop, and long
    connections that echo a stream and verify every byte."""

    def __init__(self, port, shorts=4, longs=4, long_bytes=2 << 20):
        self.port = port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.failed = []      # (time, backend or None, error)
        self.long_results = []  # (backend, ok, error)
        self.last_ok = {}
        self.threads = [threading.Thread(target=self._short) for _ in range(shorts)]
        self.threads += [threading.Thread(target=self._long, args=(i, long_bytes))
                         for i in range(longs)]
        for t in self.threads:
            t.start()

    def _short(self):
        while not self.stop.is_set():
            name = None
            try:
                name, s = whoami(self.port, keep=True, timeout=5)
                roundtrip(s, b"y" * 64)
                s.close()
                with self.lock:
                    self.ok += 1
                    self.last_ok[name] = time.time()
            except Exception as e:  # noqa: BLE001 - counted
                with self.lock:
                    self.failed.append((time.time(), name, repr(e)))
                time.sleep(0.01)

    def _long(self, i, n):
        name = None
        try:
            name, s = whoami(self.port, keep=True, timeout=10)
            s.settimeout(10)
            step = 32 << 10
            for off in range(0, n, step):
                # Made per chunk, so a long stream costs no memory up front.
                chunk = payload(min(step, n - off), seed=(100 + i) * 1000003 + off // step)
                s.sendall(chunk)
                got = b""
                while len(got) < len(chunk):
                    d = s.recv(len(chunk) - len(got))
                    if not d:
                        raise Fail("closed after %d bytes" % off)
                    got += d
                if got != chunk:
                    raise Fail("corrupted at %d" % off)
                if self.stop.is_set():
                    break
                time.sleep(0.005)
            s.close()
            with self.lock:
                self.long_results.append((name, True, ""))
        except Exception as e:  # noqa: BLE001 - counted
            with self.lock:
                self.long_results.append((name, False, repr(e)))

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(60)


def abnormal_closes(a):
    """Sessions apilb closed for another reason than both sides finishing,
    by upstream address (from its debug log)."""
    out = {}
    for line in a.lines():
        m = re.search(r'msg="connection closed" sid=\d+ client=\S+ upstream=(\S+) reason=(\S+)',
                      line)
        if m and m.group(2) != "done":
            out[m.group(1)] = out.get(m.group(1), 0) + 1
    return out


def abnormal_lines(a, victim):
    """apilb's log lines of the abnormal closes to any upstream but victim:
    the evidence a failed check shows."""
    return [l for l in a.lines() if 'msg="connection closed"' in l and " reason=done" not in l
            and " upstream=%s " % victim not in l]


def raise_fds():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def three(**kw):
    bs = [Backend("127.0.0.%d" % (i + 2), "b%d" % i, **kw) for i in range(3)]
    return bs, sum((["--upstream", b.addr] for b in bs), [])


@scenario
def kill_rst():
    """An apiserver killed with RST: only its own connections break; new
    connections never fail."""
    bs, ups = three()
    a = Apilb(*ups, "--health-interval", "500ms", "--health-timeout", "300ms", health="tcp")
    try:
        load = Load(a.port)
        time.sleep(0.5)
        victim = bs[0]
        t0 = time.time()
        # RST every open connection and stop listening.
        victim.stopped = True
        victim.sock.close()
        with victim.lock:
            for c in victim.conns:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                c.close()
        time.sleep(1.5)
        load.finish()
        short_fail = [f for f in load.failed if f[0] >= t0]
        not_victim = [r for r in load.long_results if r[0] != victim.name and not r[1]]
        ab = abnormal_closes(a)
        others = {k: v for k, v in ab.items() if k != victim.addr}
        print("killed upstream: short connections ok=%d failed=%d; long connections on other "
              "upstreams failed=%d; long on the victim broken=%d" %
              (load.ok, len(short_fail), len(not_victim),
               len([r for r in load.long_results if r[0] == victim.name and not r[1]])))
        print("apilb sessions closed abnormally, by upstream: %r" % ab)
        check(not others, "sessions to healthy upstreams broke: %r" % others)
        check(not [f for f in short_fail if f[1] not in (None, victim.name)],
              "connections to healthy upstreams failed: %r" % short_fail[:3])
        check(not not_victim, "long connections to healthy upstreams broke: %r" % not_victim)
        # A client whose backend is unknown failed before the backend answered:
        # it must have been one of apilb's sessions to the victim.
        unknown = [f for f in short_fail if f[1] is None]
        check(len(unknown) <= ab.get(victim.addr, 0),
              "%d failures not explained by sessions to the victim: %r" % (len(unknown), unknown))
    finally:
        a.stop()
        for b in bs:
            b.stop()


@scenario
def blackhole_load():
    """An apiserver black-holed under load: new connections keep working and
    clients of the victim are back on a healthy upstream within the bound."""
    bs, ups = three(backlog=4)
    a = Apilb(*ups, "--health-interval", "500ms", "--health-timeout", "300ms", "--fall", "2",
              "--connect-timeout", "300ms", "--close-spread", "0",  # the checks' delay, unspread
              health="tcp")
    try:
        load = Load(a.port, longs=0)
        held = [whoami(a.port, keep=True) for _ in range(9)]
        victim = bs[1]
        mine = [s for n, s in held if n == victim.name]
        t0 = time.time()
        victim.freeze()
        times = []
        for s in mine:
            if closed_by_peer(s, 5):
                times.append(time.time() - t0)
        time.sleep(0.5)
        load.finish()
        failed_new = [f for f in load.failed if f[1] is None]
        ab = abnormal_closes(a)
        print("apilb sessions closed abnormally, by upstream: %r" % ab)
        check(not {k: v for k, v in ab.items() if k != victim.addr},
              "sessions to healthy upstreams broke: %r\n%s" %
              (ab, "\n".join(abnormal_lines(a, victim.addr)[:10])))
        print("black hole: %d held clients of the victim disconnected after %s s; short "
              "connections ok=%d, failed before reaching a backend=%d" %
              (len(times), ",".join("%.2f" % t for t in times), load.ok, len(failed_new)))
        check(len(times) == len(mine), "clients of the black hole were not disconnected")
        check(max(times or [0]) < 0.5 * 1.1 * 2 + 0.3 + 0.5, "disconnect too slow: %r" % times)
        check(not [f for f in load.failed if f[1] not in (None, victim.name)],
              "connections to healthy upstreams failed")
        check(len(failed_new) <= ab.get(victim.addr, 0),
              "new connections failed beyond sessions to the victim: %r" % failed_new[:3])
        for n, s in held:
            if n != victim.name:
                roundtrip(s)
                s.close()
    finally:
        a.stop()
        for b in bs:
            b.stop()


@scenario
def slowed():
    """A slow apiserver (200 ms per answer): least-conn sends it fewer of the
    concurrent connections, and nothing fails."""
    bs, ups = three()
    orig = bs[0]._serve

    def slow_serve(c):
        time.sleep(0.2)
        orig(c)

    bs[0]._serve = slow_serve
    a = Apilb(*ups)
    try:
        load = Load(a.port, shorts=8, longs=0)
        time.sleep(2)
        load.finish()
        counts = {b.name: b.total for b in bs}
        print("slowed upstream: connections per upstream %r, failed=%d" % (counts, len(load.failed)))
        check(not load.failed, "failures: %r" % load.failed[:3])
        check(counts["b0"] < min(counts["b1"], counts["b2"]) / 2,
              "least-conn did not shift load away from the slow upstream: %r" % counts)
    finally:
        a.stop()
        for b in bs:
            b.stop()


@scenario
def restart_and_all_down():
    """Every apiserver down: clients are closed at once; one comes back: new
    connections reach it within one check interval, then the others too."""
    bs, ups = three()
    a = Apilb(*ups, "--health-interval", "300ms", "--health-timeout", "200ms", "--rise", "1",
              "--fall", "1", health="tcp")
    try:
        ports = [b.port for b in bs]
        for b in bs:
            b.stop()
        time.sleep(0.8)
        t0 = time.time()
        s = a.connect()
        s.sendall(b"whoami\n")
        check(closed_by_peer(s, 3), "client hung with every upstream down")
        closed_after = time.time() - t0
        back = Backend("127.0.0.2", "back")
        # Rebind the same address and port as the first backend.
        back.sock.close()
        back.sock = socket.socket()
        back.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        back.sock.bind(("127.0.0.2", ports[0]))
        back.sock.listen(128)
        back.sock.settimeout(0.05)
        back.port = ports[0]
        threading.Thread(target=back._accept, daemon=True).start()
        t1 = time.time()
        while True:
            try:
                if whoami(a.port) == "back":
                    break
            except (Fail, OSError):
                pass
            if time.time() - t1 > 3:
                raise Fail("the returning upstream was not used within 3s")
            time.sleep(0.02)
        print("all down: client closed after %.3fs; first connection to the returning upstream "
              "after %.3fs" % (closed_after, time.time() - t1))
        check(closed_after < 1.0, "client closed after %.2fs" % closed_after)
        a.wait_log(r'upstream health changed.*to=healthy', 3)
        back.stop()
    finally:
        a.stop()


@scenario
def memory_cap():
    """Under a 48 MiB memory cap (a cgroup, like a container limit), thousands
    of connections and bulk traffic leave apilb up and serving."""
    if os.environ.get("APILB_SANITIZED"):
        print("SKIP: sanitizer builds reserve far more memory than the cap")
        sys.exit(77)
    cg = "/sys/fs/cgroup/memory/apilb-test-%d" % os.getpid()
    if not os.path.isdir("/sys/fs/cgroup/memory"):
        if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
            cg = "/sys/fs/cgroup/apilb-test-%d" % os.getpid()
        else:
            raise Fail("no memory cgroup controller")
    raise_fds()
    bs, ups = three(backlog=2048)
    a = Apilb(*ups, "--workers", "2", log_level="info")
    os.mkdir(cg)
    try:
        limit_file = "memory.limit_in_bytes" if "/memory/" in cg else "memory.max"
        with open(os.path.join(cg, limit_file), "w") as f:
            f.write(str(48 << 20))
        with open(os.path.join(cg, "cgroup.procs"), "w") as f:
            f.write(str(a.proc.pid))
        held = []
        for _ in range(3000):
            s = socket.create_connection(("127.0.0.1", a.port), timeout=5)
            s.sendall(b"echo\n")
            held.append(s)
        for i in range(8):
            data = payload(4 << 20, seed=i)
            check(exchange(a.port, data) == data, "bulk exchange %d failed under the cap" % i)
        with open("/proc/%d/status" % a.proc.pid) as f:
            rss = int([l for l in f if l.startswith("VmRSS")][0].split()[1])
        for s in held:
            roundtrip(s, b"still")
            s.close()
        check(a.proc.poll() is None, "apilb died under the memory cap")
        print("memory cap 48 MiB: 3000 open connections and 32 MiB of bulk traffic served; "
              "apilb RSS %d KiB" % rss)
    finally:
        a.stop()
        for b in bs:
            b.stop()
        try:
            os.rmdir(cg)
        except OSError:
            pass


@scenario
def hostile_clients():
    """Idle floods, slowloris, random bytes and resets at every point of the
    relay: apilb keeps serving a good client, and no descriptor leaks."""
    raise_fds()
    bs, ups = three(backlog=2048)
    a = Apilb(*ups, "--workers", "2")
    pid = a.proc.pid
    try:
        base_fds = len(os.listdir("/proc/%d/fd" % pid))
        idle = []
        for _ in range(300):
            idle.append(socket.create_connection(("127.0.0.1", a.port)))
        stop = threading.Event()
        rng = random.Random(3)
        errors = []

        def slowloris():
            socks = [socket.create_connection(("127.0.0.1", a.port)) for _ in range(20)]
            while not stop.is_set():
                for s in socks:
                    try:
                        s.send(b"e")
                    except OSError:
                        pass
                time.sleep(0.1)
            for s in socks:
                s.close()

        def garbage_and_resets():
            while not stop.is_set():
                s = socket.socket()
                try:
                    s.connect(("127.0.0.1", a.port))
                    what = rng.randrange(4)
                    if what >= 1:
                        s.sendall(os.urandom(rng.randrange(1, 100000)))
                    if what >= 2:
                        time.sleep(rng.uniform(0, 0.01))
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
                s.close()
                time.sleep(0.003)  # the Python backends, not apilb, are the limit here

        ts = [threading.Thread(target=slowloris)] + \
             [threading.Thread(target=garbage_and_resets) for _ in range(3)]
        for t in ts:
            t.start()
        lat = []
        for i in range(200):
            t0 = time.time()
            name, s = whoami(a.port, keep=True)
            roundtrip(s, payload(10000, seed=i))
            s.close()
            lat.append(time.time() - t0)
        stop.set()
        for t in ts:
            t.join(30)
        for s in idle:
            s.close()
        lat.sort()
        time.sleep(1.0)
        fds = len(os.listdir("/proc/%d/fd" % pid))
        print("hostile clients: good client p50 %.1f ms, p99 %.1f ms over 200 exchanges; "
              "descriptors %d before, %d after" %
              (lat[100] * 1000, lat[197] * 1000, base_fds, fds))
        check(not errors, "errors: %r" % errors[:3])
        # Idle pipes stay pooled for reuse (a few per worker); sockets must all be gone.
        check(fds <= base_fds + 16, "descriptors leaked: %d -> %d" % (base_fds, fds))
        socks = [l for l in os.listdir("/proc/%d/fd" % pid)
                 if os.readlink("/proc/%d/fd/%s" % (pid, l)).startswith("socket:")]
        check(len(socks) <= 3 + 2 * 2, "sockets left open: %d" % len(socks))
        check(a.proc.poll() is None, "apilb died")
    finally:
        a.stop()
        for b in bs:
            b.stop()


@scenario
def signals_under_load():
    """SIGHUP storms under load change nothing; SIGTERM during heavy traffic
    drains the open connections and exits 0."""
    import tempfile
    d = tempfile.mkdtemp(prefix="apilb-it-")
    path = os.path.join(d, "ups")
    bs, _ = three()
    with open(path, "w") as f:
        f.write("".join("%s\n" % b.addr for b in bs))
    a = Apilb("--upstreams-file", path, "--shutdown-timeout", "20s")
    try:
        load = Load(a.port, shorts=4, longs=4, long_bytes=4 << 20)
        for _ in range(300):
            a.signal(signal.SIGHUP)
            time.sleep(0.003)
        time.sleep(0.3)
        a.signal(signal.SIGTERM)
        t0 = time.time()
        rc = a.wait_exit(25)
        load.finish()
        broken_long = [r for r in load.long_results if not r[1]]
        print("SIGHUP storm: 300 signals; SIGTERM under load: exit %d after %.2fs, short ok=%d, "
              "long connections finished=%d broken=%d" %
              (rc, time.time() - t0, load.ok, len(load.long_results), len(broken_long)))
        check(rc == 0, "exit %d" % rc)
        check(not broken_long, "long connections broken by SIGTERM: %r" % broken_long[:3])
        check(len(load.long_results) == 4, "long connections did not finish")
        a.check_sanitizers()
    finally:
        a.stop()
        for b in bs:
            b.stop()
        os.system("rm -rf %s" % d)


if __name__ == "__main__":
    run()
