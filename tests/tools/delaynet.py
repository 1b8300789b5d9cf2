# SPDX-License-Identifier: Apache-2.0
"""Network namespaces joined to the test's own by a netemu link (the tc
netem stand-in, tests/tools/netemu.c): a namespace for each far end, a
point-to-point pair of private 10.x addresses on two TUN devices, and a
delay, jitter or drop per direction that the test can change while it runs.
Every process started here (namespace holders, netemu) is killed by PID at
exit. Needs root; the caller runs inside a network namespace of its own."""

import atexit
import ctypes
import os
import socket
import subprocess
import threading
import time

NETEMU = os.environ.get("NETEMU", os.path.join(os.path.dirname(__file__), "..", "..", "build",
                                               "tests", "tools", "netemu"))
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_procs = []


def _cleanup():
    for p in reversed(_procs):
        if p.poll() is None:
            p.kill()
            p.wait()


atexit.register(_cleanup)


def _setns(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, "setns %s: %s" % (path, os.strerror(e)))
    finally:
        os.close(fd)


class Netns:
    """A network namespace held by a sleeping child (unshare -n), lo up."""

    def __init__(self):
        self.proc = subprocess.Popen(["unshare", "-n", "--", "sleep", "100000"])
        _procs.append(self.proc)
        self.path = "/proc/%d/ns/net" % self.proc.pid
        mine = os.stat("/proc/self/ns/net").st_ino
        end = time.time() + 5
        while os.stat(self.path).st_ino == mine:  # until unshare has run
            if time.time() > end:
                raise RuntimeError("unshare -n did not create a namespace")
            time.sleep(0.005)
        self.ip("link", "set", "lo", "up")

    def ip(self, *args):
        subprocess.run(["nsenter", "--net=" + self.path, "ip", *args], check=True)

    def socket(self, family=socket.AF_INET, kind=socket.SOCK_STREAM):
        """A socket created inside this namespace (it stays there); the
        calling thread returns to its own namespace before this returns."""
        home = "/proc/self/task/%d/ns/net" % threading.get_native_id()
        keep = os.open(home, os.O_RDONLY)
        try:
            _setns(self.path)
            try:
                return socket.socket(family, kind)
            finally:
                if _libc.setns(keep, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back home")
        finally:
            os.close(keep)

    def entered(self):
        """A context manager: the calling thread in this namespace inside
        it (threads it starts there stay there), back home after."""
        ns = self

        class Entered:
            def __enter__(self):
                self.home = os.open("/proc/self/task/%d/ns/net" % threading.get_native_id(),
                                    os.O_RDONLY)
                _setns(ns.path)

            def __exit__(self, *exc):
                rc = _libc.setns(self.home, CLONE_NEWNET)
                os.close(self.home)
                if rc != 0:
                    raise OSError(ctypes.get_errno(), "setns back home")

        return Entered()

    def run(self, *cmd, **kw):
        return subprocess.Popen(["nsenter", "--net=" + self.path, *cmd], **kw)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Link:
    """netemu between a TUN device here (address near) and one in ns (far):
    near/32 peer far, so far is reachable from here and near from ns.
    delay/jitter are one way, per direction: ab is here -> ns, ba back."""

    _n = 0

    def __init__(self, ns, near, far, extra=()):
        Link._n += 1
        tag = "%d%d" % (os.getpid() % 10000, Link._n)
        self.tun_a, self.tun_b = "nea" + tag, "neb" + tag
        self.ns, self.near, self.far = ns, near, far
        self.proc = subprocess.Popen([NETEMU, "--tun-a", self.tun_a, "--tun-b", self.tun_b,
                                      "--netns-b", ns.path, *extra],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)
        _procs.append(self.proc)
        line = self.proc.stdout.readline()
        if not line.startswith("ready"):
            raise RuntimeError("netemu did not start: %r %s" % (line, self.proc.stderr.read()))
        subprocess.run(["ip", "addr", "add", near, "peer", far, "dev", self.tun_a], check=True)
        subprocess.run(["ip", "link", "set", self.tun_a, "up"], check=True)
        ns.ip("addr", "add", far, "peer", near, "dev", self.tun_b)
        ns.ip("link", "set", self.tun_b, "up")

    def command(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def set(self, direction="both", **kw):
        """Changes delay/jitter/drop, e.g. set("ab", drop=1)."""
        got = self.command("set %s %s" % (direction, " ".join("%s=%s" % kv for kv in kw.items())))
        if got != "ok":
            raise RuntimeError("netemu set: " + got)

    def stats(self):
        got = self.command("stats")
        return {k: int(v) for k, v in (f.split("=") for f in got.split()[1:])}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def connect_rtt(host, port, n=40, timeout=2.0):
    """Median and all of n TCP connect round trips (seconds) to host:port."""
    out = []
    for _ in range(n):
        s = socket.socket()
        s.settimeout(timeout)
        t0 = time.perf_counter()
        s.connect((host, port))
        out.append(time.perf_counter() - t0)
        s.close()
    return sorted(out)[len(out) // 2], out
