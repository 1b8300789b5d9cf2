# SPDX-License-Identifier: Apache-2.0
"""Integration scenarios of the health checker itself: checkers of removed
upstreams stop (and the registry is pruned), this host's own shortages are no
verdict about an upstream, a cluster CA reaches the checks whenever it
appears, no TLS session outlives the trust it was verified under, and the
check interval and timeout are independent. Real apilb, real sockets, real
TLS; scenarios that need a network namespace of their own (local_errors) run
in one (unshare -n) and are skipped without root."""

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

from harness import (Apilb, Backend, Fail, TlsApiserver, check, listener, make_certs, metric,
                     reexec_in_netns, refused_addr, roundtrip, run, scenario, tmpdir, whoami,
                     write_atomic)


def health_line(a, addr, to, start=0, timeout=5.0):
    return a.wait_log(r'upstream health changed.*upstream=%s .*to=%s' % (re.escape(addr), to),
                      timeout, start=start)


def wait_for(what, cond, timeout=5.0, step=0.05):
    end = time.time() + timeout
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(step)
    raise Fail("%s: not within %.1fs" % (what, timeout))


def upstream_names(a):
    import json
    code, body = a.admin("/upstreams")
    check(code == 200, "/upstreams answered %d" % code)
    return {u["address"]: u for u in json.loads(body)["upstreams"]}


def drain_checked(kind):
    """drain with health checks on: the removed upstream's checker stops
    once it carries no connection, `upstream drained` is logged, it gets no
    more probes and leaves /upstreams and /metrics."""
    d = tmpdir()
    path = os.path.join(d, "ups")
    if kind == "readyz":
        ca, crt, key = make_certs(d)
        A, B = TlsApiserver("127.0.0.2", crt, key, "A"), TlsApiserver("127.0.0.3", crt, key, "B")
        probes = lambda: A.readyz_hits  # noqa: E731
        extra = ["--health-ca", ca]
    else:
        A, B = Backend("127.0.0.2", "A"), Backend("127.0.0.3", "B")
        probes = lambda: A.total  # noqa: E731
        extra = []
    with open(path, "w") as f:
        f.write("%s\n%s\n" % (A.addr, B.addr))
    a = Apilb("--upstreams-file", path, "--drain-timeout", "2s", "--health-interval", "200ms",
              "--health-timeout", "150ms", *extra, health=kind, admin=True)
    try:
        health_line(a, A.addr, "healthy")
        health_line(a, B.addr, "healthy")
        held = None
        if kind == "tcp":
            for _ in range(20):
                name, s = whoami(a.port, keep=True)
                if name == "A":
                    held = s
                    break
                s.close()
            check(held is not None, "no connection landed on A")
        write_atomic(path, "%s\n" % B.addr)
        t0 = time.time()
        a.signal(signal.SIGHUP)
        a.wait_log(r'upstream removed" upstream=%s' % re.escape(A.addr))
        if held is not None:
            roundtrip(held)  # draining: still checked, still working
            n = probes()
            time.sleep(0.6)
            check(probes() > n, "a draining upstream with a connection is no longer checked")
        a.wait_log(r'upstream drained" upstream=%s' % re.escape(A.addr), 2 + 1.5)
        print("upstream drained %.2fs after the removal" % (time.time() - t0))
        if held is not None:
            held.close()
        n = probes()
        time.sleep(1.0)
        check(probes() == n, "the drained upstream got %d probes after `upstream drained`" %
              (probes() - n))
        check(A.addr not in upstream_names(a), "the drained upstream is still in /upstreams")
        _, text = a.admin("/metrics")
        check('upstream="%s"' % A.addr not in text, "the drained upstream is still in /metrics")
        check(B.addr in upstream_names(a), "the remaining upstream left /upstreams")
    finally:
        a.stop()
        A.stop()
        B.stop()


@scenario
def drain_tcp():
    drain_checked("tcp")


@scenario
def drain_readyz():
    drain_checked("readyz")


@scenario
def churn():
    """Many add/remove cycles through SIGHUP of an upstreams file with tcp
    checks on: every removed set is drained and pruned (the registry stays
    bounded), and after more than 2048 distinct addresses a new one still
    enters the table."""
    d = tmpdir()
    path = os.path.join(d, "ups")
    per = 256
    cycles = 9  # 9 x 256 = 2304 distinct addresses > the registry's 2048
    real = Backend("127.0.0.2", "real")

    def batch(c):
        # 127.(77+c).x.y:1, nothing listens: refused at once.
        return ["127.%d.%d.%d:1" % (77 + c, i // 200, 1 + i % 200) for i in range(per)]

    with open(path, "w") as f:
        f.write("%s\n" % real.addr + "\n".join(batch(0)) + "\n")
    a = Apilb("--upstreams-file", path, "--drain-timeout", "1s", "--health-interval", "500ms",
              "--health-timeout", "300ms", "--fall", "1", health="tcp", admin=True)
    try:
        health_line(a, real.addr, "healthy")
        for c in range(1, cycles + 1):
            addrs = batch(c)
            mark = len(a.lines())
            write_atomic(path, "\n".join(addrs) + "\n")
            a.signal(signal.SIGHUP)
            a.wait_log(r'upstream table published', 5, start=mark)
            last = addrs[-1]

            def settled():
                ups = upstream_names(a)
                return len(ups) == per and last in ups and not ups[last]["draining"]
            wait_for("cycle %d: only the %d new upstreams in /upstreams" % (c, per), settled, 15,
                     0.2)
            if c == 1:
                a.wait_log(r'upstream drained" upstream=%s' % re.escape(real.addr), 5)
                n = real.total
                time.sleep(1.2)
                check(real.total == n, "the removed backend got %d more probes" % (real.total - n))
        drained = len([l for l in a.lines() if 'upstream drained"' in l])
        print("%d distinct addresses, %d drained, /upstreams holds %d" %
              (per * (cycles + 1) + 1, drained, len(upstream_names(a))))
        check(drained >= per * cycles, "only %d upstreams drained" % drained)
        bad = [l for l in a.lines() if "registry full" in l]
        check(not bad, "registry full: %s" % bad[:1])
        mark = len(a.lines())
        fresh = "127.99.0.1:1"
        write_atomic(path, "%s\n%s\n" % (real.addr, fresh))
        a.signal(signal.SIGHUP)
        wait_for("a new address enters the table after %d" % (per * (cycles + 1)),
                 lambda: fresh in upstream_names(a), 10, 0.2)
    finally:
        a.stop()
        real.stop()


# --- this host's own shortage ---------------------------------------------------------------


@scenario
def local_errors():
    """No ephemeral port left toward the upstream (EADDRNOTAVAIL, a netns
    with ip_local_port_range 60000-60100 and 150 idle connections through
    apilb): the probes' failures are no verdict; the long-lived connection
    survives, nothing turns unhealthy, the shortage is logged and counted."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["sysctl", "-qw", "net.ipv4.ip_local_port_range=60000 60100"], check=True)
    b = Backend("127.0.0.2", "b", backlog=512)
    a = Apilb("--upstream", b.addr, "--health-interval", "200ms", "--health-timeout", "150ms",
              "--fall", "2", health="tcp", admin=True)
    idle = []
    try:
        health_line(a, b.addr, "healthy")
        name, long_lived = whoami(a.port, keep=True)
        mark = len(a.lines())
        # Clients bind ports outside the ephemeral range: only apilb's own
        # upstream sockets run out.
        for i in range(150):
            s = socket.socket()
            s.bind(("127.0.0.1", 40000 + i))
            s.settimeout(2)
            try:
                s.connect(("127.0.0.1", a.port))
                s.sendall(b"whoami\n")
            except OSError:
                pass
            idle.append(s)
        time.sleep(2.0)  # 10 checks at 200ms: --fall 2 five times over
        bad = [l for l in a.lines()[mark:] if "to=unhealthy" in l]
        check(not bad, "a local shortage made the upstream unhealthy: %s" % bad[:1])
        roundtrip(long_lived)
        a.wait_log(r'health check not run: this host is short of resources', 1, start=mark)
        skipped = metric(a, 'apilb_upstream_health_checks_total{upstream="%s",result="local_error"}'
                         % b.addr)
        check(skipped and skipped > 0, "local errors not counted: %r" % skipped)
        local = metric(a, 'apilb_upstream_connect_failures_total{upstream="%s",reason="local"}'
                       % b.addr)
        print("checks not run: %d; data-path connects short of a port: %s" % (skipped, local))
        for s in idle:
            s.close()
        idle = []
        roundtrip(long_lived)
        long_lived.close()
    finally:
        for s in idle:
            s.close()
        a.stop()
        b.stop()


# --- trust changes ----------------------------------------------------------------------------


@scenario
def ca_appears():
    """--in-cluster with a service account whose ca.crt is missing at start:
    checks run unverified; once ca.crt is written, `health checks use the new
    cluster CA` is logged and a backend whose certificate it does not sign
    turns unhealthy."""
    d = tmpdir()
    _, crt, key = make_certs(d)
    other_ca, _, _ = make_certs(tmpdir())
    sa = os.path.join(d, "sa")
    os.makedirs(sa)
    with open(os.path.join(sa, "token"), "w") as f:
        f.write("token-one\n")
    s = TlsApiserver("127.0.0.2", crt, key, "api")
    a = Apilb("--upstream", s.addr, "--in-cluster", "--service-account-dir", sa,
              "--health-interval", "300ms", "--health-timeout", "300ms", "--fall", "1",
              "--connect-timeout", "500ms", health="readyz")
    try:
        health_line(a, s.addr, "healthy", timeout=10)
        mark = len(a.lines())
        write_atomic(os.path.join(sa, "ca.crt"), open(other_ca).read())
        a.wait_log(r'health checks use the new cluster CA', 15, start=mark)
        line = health_line(a, s.addr, "unhealthy", mark, 5)
        check("certificate" in line, "reason does not name the certificate: %s" % line)
    finally:
        a.stop()
        s.stop()


class HoldingTls:
    """A TLS server answering GET /readyz with 200; records for each
    connection whether its handshake resumed a session, and can hold the next
    request until released."""

    def __init__(self, host, cert, key):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock, self.addr = listener(host, 64)
        self.lock = threading.Lock()
        self.handshakes = []  # (time, resumed); False also for a handshake that failed
        self.requests = []  # the request heads, as received
        self.hold = False
        self.held = threading.Event()
        self.held_answered = None  # when the held request was answered, and closed cleanly
        self.release = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        # stop() shuts the listener down, which ends the blocking accept.
        try:
            for c in iter(lambda: self.sock.accept()[0], None):
                threading.Thread(target=self._serve, args=(c,), daemon=True).start()
        except OSError:
            pass

    def _serve(self, c):
        try:
            c.settimeout(10)
            try:
                t = self.ctx.wrap_socket(c, server_side=True)
            except (OSError, ssl.SSLError):
                with self.lock:
                    self.handshakes.append((time.time(), False))  # refused by the client
                return
            with self.lock:
                self.handshakes.append((time.time(), t.session_reused))
                hold, self.hold = self.hold, False
            req = b""
            while b"\r\n\r\n" not in req:
                got = t.recv(4096)
                if not got:
                    return
                req += got
            with self.lock:
                self.requests.append(req)
            if hold:
                self.held.set()
                self.release.wait(10)
            t.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            if hold:
                self.held_answered = time.time()
            # close_notify, like Go's TLS stack: a session ended by a bare
            # EOF is not resumable.
            t.unwrap()
        except (OSError, ssl.SSLError):
            pass
        finally:
            c.close()

    def stop(self):
        self.release.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


@scenario
def full_handshakes():
    """Every check is a full handshake (no session is resumed, though the
    server offers tickets and ends each connection with close_notify), so a
    check that ran across a CA change leaves nothing behind: the next one
    verifies the chain against the new CA and (the server's certificate not
    signed by it) fails."""
    d = tmpdir()
    ca, crt, key = make_certs(d)
    other_ca, _, _ = make_certs(tmpdir())
    health_ca = os.path.join(d, "health-ca.pem")
    shutil.copy(ca, health_ca)
    srv = HoldingTls("127.0.0.2", crt, key)
    # Other upstreams whose checks start while the first one's probe is
    # held (--health-ca is re-read as a check starts): 16 checkers at random
    # offsets, one start every ~0.13s. The timeout is long enough for the
    # file watch's stat fallback (10 s) when inotify is short.
    others = sum((["--upstream", refused_addr("127.0.0.3")] for _ in range(16)), [])
    a = Apilb("--upstream", srv.addr, *others, "--health-ca", health_ca,
              "--health-interval", "2s", "--health-timeout", "15s", "--fall", "1", "--rise", "1",
              health="readyz")
    try:
        health_line(a, srv.addr, "healthy")
        srv.held.clear()
        srv.hold = True
        check(srv.held.wait(5), "no check reached the held request")
        mark = len(a.lines())
        write_atomic(health_ca, open(other_ca).read())
        a.wait_log(r'--health-ca changed: health checks use the new CA', 12, start=mark)
        t_swap = time.time()
        srv.release.set()  # the old probe now succeeds, after the swap
        wait_for("the held check answered", lambda: srv.held_answered, 3)
        wait_for("a check after the CA change",
                 lambda: [1 for t, _ in srv.handshakes if t > t_swap], 10)
        line = health_line(a, srv.addr, "unhealthy", mark, 5)
        with srv.lock:
            after = [r for t, r in srv.handshakes if t > t_swap]
            resumed = sum(r for _, r in srv.handshakes)
        print("handshakes: %d (%d after the CA change), resumed: %d" %
              (len(srv.handshakes), len(after), resumed))
        check(after, "no check after the CA change")
        check(not resumed, "%d checks resumed a TLS session" % resumed)
        check("certificate" in line, "reason does not name the certificate: %s" % line)
        bad = [l for l in a.lines()[mark:] if "to=healthy" in l and srv.addr in l]
        check(not bad, "healthy again under a CA that does not sign it: %s" % bad[:1])
    finally:
        a.stop()
        srv.stop()


@scenario
def no_credentials_unverified():
    """--health-auth kubeconfig while no CA can verify the apiservers (an
    in-cluster ca.crt missing at start): the checks send no token (401/403
    would count as alive); once ca.crt appears they verify and present it."""
    d = tmpdir()
    ca, crt, key = make_certs(d)
    sa = os.path.join(d, "sa")
    os.makedirs(sa)
    with open(os.path.join(sa, "token"), "w") as f:
        f.write("token-one\n")
    srv = HoldingTls("127.0.0.2", crt, key)
    os.environ["APILB_TEST_SECRETS"] = "token-one,Bearer "  # Apilb.stop(): never in the log
    a = Apilb("--upstream", srv.addr, "--in-cluster", "--service-account-dir", sa,
              "--health-auth", "kubeconfig", "--health-interval", "200ms",
              "--health-timeout", "500ms", "--connect-timeout", "500ms", health="readyz")
    try:
        a.wait_log(r'health checks present no credentials .* until a CA verifies')
        wait_for("three checks", lambda: len(srv.requests) >= 3, 5)
        with srv.lock:
            sent = [r for r in srv.requests if b"authorization:" in r.lower()]
        check(not sent, "a token went to an unverified apiserver: %d of %d checks" %
              (len(sent), len(srv.requests)))
        mark = len(a.lines())
        write_atomic(os.path.join(sa, "ca.crt"), open(ca).read())
        a.wait_log(r'health checks use the new cluster CA', 15, start=mark)
        n = len(srv.requests)
        wait_for("a check with the token",
                 lambda: any(b"Authorization: Bearer token-one\r\n" in r
                             for r in srv.requests[n:]), 5)
        print("no token while unverified; presented once ca.crt appeared")
    finally:
        a.stop()
        srv.stop()


# --- interval and timeout ----------------------------------------------------------------------


@scenario
def interval_timeout():
    """--health-interval 500ms --health-timeout 1s is accepted; a check of an
    upstream that never completes the TLS handshake ends at the timeout (1s)
    and the next starts an interval (500ms +-10%) after it ended."""
    lst = socket.socket()
    lst.bind(("127.0.0.2", 0))
    lst.listen(16)
    addr = "127.0.0.2:%d" % lst.getsockname()[1]
    spans = []  # (accepted, closed by apilb)
    stop = threading.Event()

    def serve():
        lst.settimeout(0.1)
        while not stop.is_set():
            try:
                c, _ = lst.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t0 = time.time()
            c.settimeout(5)
            try:
                while c.recv(4096):
                    pass  # never answer the ClientHello
            except OSError:
                pass
            spans.append((t0, time.time()))
            c.close()

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    a = Apilb("--upstream", addr, "--health-interval", "500ms", "--health-timeout", "1s",
              "--fall", "1", health="readyz")
    try:
        line = health_line(a, addr, "unhealthy", 0, 5)
        check("tls handshake timeout" in line, "reason: %s" % line)
        wait_for("five checks", lambda: len(spans) >= 5, 10)
        took = [c - o for o, c in spans[:5]]
        gaps = [spans[i + 1][0] - spans[i][1] for i in range(4)]
        print("checks took %s s; the next began %s s after each ended" %
              (", ".join("%.2f" % x for x in took), ", ".join("%.2f" % x for x in gaps)))
        check(all(0.95 <= x <= 1.4 for x in took), "checks did not end at the 1s timeout: %r" %
              took)
        check(all(0.44 <= g <= 0.8 for g in gaps), "next check not an interval after: %r" % gaps)
    finally:
        stop.set()
        a.stop()
        lst.close()


if __name__ == "__main__":
    if sys.argv[1:] == ["local_errors"]:
        reexec_in_netns(__file__)
    run()
