# SPDX-License-Identifier: Apache-2.0
"""`apilb status`: the table and the JSON a running apilb's admin endpoint
gives (GET /status, /upstreams), and a clear error, never garbage on the
terminal, when the admin endpoint is absent, off or answers something that
is not a good answer."""

import json
import os
import socket
import subprocess
import threading
import time

from harness import (APILB, Apilb, Backend, check, listener, refused_addr, run, scenario, tmpdir,
                     unreachable_kubeconfig, whoami)


def status(*args, env=None):
    p = subprocess.run([APILB, "status", *args], capture_output=True, text=True, timeout=30,
                       env=dict({"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, **(env or {})))
    return p.returncode, p.stdout, p.stderr


def rows(table):
    """{address: row dict} of the status table's upstream rows."""
    lines = table.splitlines()
    head = lines[0]
    cols = ["UPSTREAM", "SOURCES", "STATE", "HEALTH", "REASON", "SINCE", "ACTIVE", "CONNECT",
            "ZONE"]
    starts = [head.index(c) for c in cols]
    out = {}
    for line in lines[1:]:
        if not line.strip():
            break
        cells = [line[a:b].strip() for a, b in zip(starts, starts[1:] + [None])]
        out[cells[0]] = dict(zip(cols, cells))
    return out


@scenario
def table():
    """Two healthy upstreams and one that refuses: their health, reason,
    state and the open connection counted; the watcher is off."""
    A, B = Backend("127.0.0.2", "A"), Backend("127.0.0.3", "B")
    dead_addr = refused_addr("127.0.0.4")
    a = Apilb("--upstream", A.addr, "--upstream", B.addr, "--upstream", dead_addr,
              "--health-interval", "200ms", "--health-timeout", "150ms", health="tcp",
              admin=True)
    try:
        a.wait_log(r'upstream=%s from=unknown to=unhealthy' % dead_addr, timeout=10)
        for up in (A, B):
            a.wait_log(r'upstream=%s from=unknown to=healthy' % up.addr, timeout=10)
        _, s = whoami(a.port, keep=True)
        rc, out, err = status("--admin", "127.0.0.1:%d" % a.admin_port)
        check(rc == 0 and err == "", "apilb status exited %d: %s" % (rc, err))
        r = rows(out)
        check(set(r) == {A.addr, B.addr, dead_addr}, "rows: %s\n%s" % (sorted(r), out))
        check(r[dead_addr]["HEALTH"] == "unhealthy" and "refused" in r[dead_addr]["REASON"],
              "the dead upstream's row: %s" % r[dead_addr])
        check(all(r[x]["HEALTH"] == "healthy" and r[x]["STATE"] == "in table" and
                  r[x]["SOURCES"] == "seed" and r[x]["ZONE"] == "-" for x in (A.addr, B.addr)),
              out)
        check(sum(int(r[x]["ACTIVE"]) for x in r) == 1, "the open connection: %s" % out)
        check("WATCHER  off" in out and "generation 1" in out, out)
        print(out)
        s.close()
    finally:
        a.stop()
        A.stop()
        B.stop()


@scenario
def json_output():
    """-o json is /upstreams, with each upstream's health reason and since."""
    A = Backend("127.0.0.2", "A")
    a = Apilb("--upstream", A.addr, "--health-interval", "200ms", "--health-timeout", "150ms",
              health="tcp", admin=True)
    try:
        a.wait_log(r'to=healthy', timeout=10)
        rc, out, err = status("-o", "json", env={"APILB_ADMIN_LISTEN": "127.0.0.1:%d"
                                                 % a.admin_port})
        check(rc == 0, "exit %d: %s" % (rc, err))
        doc = json.loads(out)
        u = doc["upstreams"][0]
        check(u["address"] == A.addr and u["health"] == "healthy" and u["health_reason"] and
              time.time() - 60 < u["health_since"] <= time.time() + 1,
              "upstream: %s" % u)
        check("watcher" not in doc, "a watcher without discovery: %s" % doc)
    finally:
        a.stop()
        A.stop()


@scenario("threads")
def watcher():
    """With discovery on (a kubeconfig whose apiserver refuses), the watcher
    line says where it is and counts its errors."""
    kc = unreachable_kubeconfig(tmpdir())
    A = Backend("127.0.0.2", "A")
    a = Apilb("--upstream", A.addr, "--kubeconfig", kc, admin=True)
    try:
        a.wait_log(r'apiserver request failed', timeout=10)
        rc, out, err = status("--admin=127.0.0.1:%d" % a.admin_port)
        line = [l for l in out.splitlines() if l.startswith("WATCHER")]
        check(rc == 0 and line and "source endpointslices" in line[0] and
              "last sync never" in line[0] and " errors 0 " not in line[0],
              "exit %d, watcher line %s: %s" % (rc, line, err))
        rc, out, err = status("--admin=127.0.0.1:%d" % a.admin_port, "--output=json")
        w = json.loads(out)["watcher"]
        check(w["errors"] >= 1 and w["last_sync"] == 0, "watcher JSON: %s" % w)
    finally:
        a.stop()
        A.stop()


class FakeAdmin:
    """An admin endpoint that answers every connection with the same bytes
    (or nothing, with answer=None), then closes."""

    def __init__(self, answer, hold=0.0):
        self.sock, _ = listener("127.0.0.1")
        self.port = self.sock.getsockname()[1]
        self.answer, self.hold = answer, hold
        self.sock.settimeout(0.2)
        self.stopped = False
        self.t = threading.Thread(target=self._serve, daemon=True)
        self.t.start()

    def _serve(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            try:
                c.recv(4096)
                if self.answer is not None:
                    c.sendall(self.answer)
                time.sleep(self.hold)
            except OSError:
                pass
            c.close()

    def stop(self):
        self.stopped = True
        self.t.join()
        self.sock.close()


def http(body, status="200 OK", extra=b""):
    return (b"HTTP/1.1 " + status.encode() + b"\r\nContent-Type: text/plain\r\n" + extra +
            b"Content-Length: %d\r\n\r\n" % len(body) + body)


@scenario
def hostile():
    """Each bad answer is refused with one line naming what was wrong, exit
    2, and nothing on stdout."""
    cases = [
        ("not HTTP", b"SSH-2.0-OpenSSH_9.2\r\n", [], "is not HTTP"),
        ("HTTP 500", http(b"boom\n", "500 Internal Server Error"), [], "did not answer 200 (HTTP 500)"),
        ("terminal escapes", http(b"UPSTREAM\n\x1b[2J\x1b]0;owned\x07\n"), [],
         "not printable text"),
        ("NUL byte", http(b"UPSTREAM\x00\n"), [], "NUL byte"),
        ("cut short", http(b"UPSTREAM\n")[:-3], [], "cut short"),
        ("headers never end", b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n", [],
         "ends inside the headers"),
        ("chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
         [], "chunked"),
        ("2 MiB", http(b"x" * (2 << 20)), [], "larger than 1 MiB"),
        ("silent", None, [], "within 5 s"),
        ("JSON broken", http(b'{"upstreams": [1, 2,]}'), ["-o", "json"], "trailing comma"),
        ("JSON nested", http(b"[" * 100 + b"]" * 100), ["-o", "json"], "nested too deeply"),
        ("JSON two values", http(b'{} {}'), ["-o", "json"], "bytes after the value"),
    ]
    for name, answer, args, want in cases:
        f = FakeAdmin(answer, hold=6.0 if answer is None else 0.0)
        try:
            t0 = time.time()
            rc, out, err = status("--admin", "127.0.0.1:%d" % f.port, *args)
            took = time.time() - t0
        finally:
            f.stop()
        check(rc == 2 and out == "" and want in err and err.count("\n") == 1,
              "%s: exit %d, stdout %r, stderr %r" % (name, rc, out[:80], err))
        check(took < 8, "%s: took %.1f s" % (name, took))
        print("%-18s -> %s" % (name, err.strip()))


@scenario
def absent():
    """No admin endpoint there, the admin endpoint off, bad arguments."""
    rc, out, err = status("--admin", refused_addr("127.0.0.1"))
    check(rc == 2 and "Connection refused" in err and "--admin-listen" in err, err)
    rc, out, err = status(env={"APILB_ADMIN_LISTEN": "off"})
    check(rc == 2 and "admin endpoint is off" in err, err)
    rc, out, err = status("--admin", "nowhere")
    check(rc == 1 and "--admin=nowhere" in err, err)
    rc, out, err = status("-o", "yaml")
    check(rc == 1 and "must be table or json" in err, err)
    rc, out, err = status("--frobnicate")
    check(rc == 1 and "--frobnicate" in err, err)
    rc, out, err = status("--help")
    check(rc == 0 and "usage: apilb status" in out, out)


if __name__ == "__main__":
    run()
