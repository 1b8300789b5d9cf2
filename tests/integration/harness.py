# SPDX-License-Identifier: Apache-2.0
"""Shared pieces of the integration scenarios: real backends on loopback
addresses (threads of the test process), an apilb child process, and helpers
to drive real client sockets. Every process started here is killed by PID at
exit, and every port is chosen by the kernel (port 0)."""

import atexit
import hashlib
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

APILB = os.environ.get("APILB", os.path.join(os.path.dirname(__file__), "..", "..", "build", "apilb"))

_children = []


def _cleanup():
    for p in _children:
        if p.poll() is None:
            p.kill()
            p.wait()


atexit.register(_cleanup)


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


class Backend:
    """A TCP server on (host, 0) in a thread. Modes, chosen by the first line
    the client sends:
      "echo\\n"        echo everything until EOF, then close
      "whoami\\n"      answer the backend's name and keep the connection open
                      (echoing whatever follows)
      "source N\\n"    send N pseudo-random bytes (seed = N) then close
      "dribble N\\n"   the same N bytes in writes of 1 to 4,000 bytes (small
                      reads for the relay, many sends), then close
      "sink\\n"        read until EOF, then send the sha256 of what came
      "late N\\n"      read until EOF, then send N bytes, then close
      "finfirst N\\n"  send N bytes, shut down writing, then read until EOF
                      and record the sha256 of what came in self.received
    """

    def __init__(self, host="127.0.0.2", name=None, backlog=128):  # noqa: D107
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(backlog)
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.name = name or "%s:%d" % (host, self.port)
        self.active = 0
        self.total = 0
        self.received = []
        self.lock = threading.Lock()
        self.conns = []
        self.stopped = False
        self.frozen = False
        self.answer_delay = 0.0  # seconds before a whoami answer: a slow TLS handshake
        self.fillers = []
        self.sock.settimeout(0.05)
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    @property
    def addr(self):
        if ":" in self.host:
            return "[%s]:%d" % (self.host, self.port)
        return "%s:%d" % (self.host, self.port)

    def _accept(self):
        while not self.stopped:
            if self.frozen:
                time.sleep(0.05)
                continue
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            c.settimeout(None)
            with self.lock:
                self.active += 1
                self.total += 1
                self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def close_all(self):
        """Closes every open connection (like a crashing apiserver)."""
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def freeze(self):
        """Black-holes the backend: open connections get no more answers and
        new connections hang in a full accept queue (SYNs are dropped)."""
        self.frozen = True
        time.sleep(0.1)
        for _ in range(300):
            f = socket.socket()
            f.settimeout(0.2)
            try:
                f.connect((self.host, self.port))
            except socket.timeout:
                f.close()
                return
            self.fillers.append(f)
        raise Fail("could not fill the accept queue of %s" % self.name)

    def stop(self):
        for f in self.fillers:
            f.close()
        self.stopped = True
        self.sock.close()
        # The listener is gone only when the accept thread's poll on it has
        # returned: until then the kernel still completes handshakes (which
        # the close below would reset). A killed apiserver loses both at once.
        if self.acceptor is not threading.current_thread():
            self.acceptor.join(1.0)
        self.close_all()

    def _serve(self, c):
        try:
            line = b""
            while not line.endswith(b"\n"):
                d = c.recv(1)
                if not d or len(line) > 64:
                    return  # not one of our clients
                line += d
            try:
                words = line.decode().split()
            except UnicodeDecodeError:
                return
            if not words:
                return
            mode = words[0]
            if mode == "echo":
                pump_echo(c)
            elif mode == "whoami":
                time.sleep(self.answer_delay)
                c.sendall(self.name.encode() + b"\n")
                pump_echo(c, self)
            elif mode == "source":
                c.sendall(payload(int(words[1])))
            elif mode == "dribble":
                data = payload(int(words[1]))
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sizes = random.Random(len(data))
                off = 0
                while off < len(data):
                    n = sizes.randint(1, 4000)
                    c.sendall(data[off:off + n])
                    off += n
            elif mode == "sink":
                c.sendall(read_all_hash(c).encode())
            elif mode == "late":
                read_all_hash(c)
                time.sleep(0.2)
                c.sendall(payload(int(words[1])))
            elif mode == "finfirst":
                c.sendall(payload(int(words[1])))
                c.shutdown(socket.SHUT_WR)
                h = read_all_hash(c)
                with self.lock:
                    self.received.append(h)
        except OSError:
            pass
        finally:
            with self.lock:
                self.active -= 1
                if c in self.conns:
                    self.conns.remove(c)
            c.close()


class Acceptor:
    """A listener on host whose thread hands each accepted connection to
    self.serve(c), one at a time, until close()."""

    def __init__(self, host, backlog=128):
        self.sock, self.addr = listener(host, backlog)
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.serve(c)

    def close(self):
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept
        self.sock.close()
        self.t.join(5)


class Slammer(Acceptor):
    """Accepts connections and closes them before answering (FIN, or RST
    when reset is true), like an apiserver dying with connections queued."""

    def __init__(self, host, reset=False):
        self.count = 0
        self.reset = reset
        super().__init__(host)

    def serve(self, c):
        self.count += 1
        try:
            c.recv(64)  # the client's first bytes arrived, then it dies
        except OSError:
            pass
        if self.reset:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()


def segs_in(s):
    """Segments this socket has received (struct tcp_info's tcpi_segs_in)."""
    info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232)
    return struct.unpack_from("I", info, 140)[0]


class OneShot(Acceptor):
    """An upstream that serves one connection at a time; per connection it
    reads the request (up to a newline), records how many segments that took
    to arrive, and answers 100 bytes with its FIN in the same segment."""

    def __init__(self, host):
        self.segs = []
        self.accepted = []
        super().__init__(host, 64)

    def serve(self, c):
        self.accepted.append(time.time())
        with c:
            c.settimeout(5)
            req = b""
            try:
                while not req.endswith(b"\n"):
                    d = c.recv(100)
                    if not d:
                        break
                    req += d
            except OSError:
                return
            self.segs.append(segs_in(c))
            if req:
                c.send(b"r" * 100, socket.MSG_MORE)
                c.shutdown(socket.SHUT_WR)  # adds the FIN to that segment
                c.settimeout(2)
                try:
                    c.recv(100)
                except OSError:
                    pass


def pump_echo(c, backend=None):
    while True:
        while backend is not None and backend.frozen and not backend.stopped:
            time.sleep(0.05)
        d = c.recv(1 << 16)
        if not d:
            c.shutdown(socket.SHUT_WR)
            return
        c.sendall(d)


def read_all_hash(c):
    h = hashlib.sha256()
    while True:
        d = c.recv(1 << 16)
        if not d:
            return h.hexdigest()
        h.update(d)


def payload(n, seed=None):
    """n deterministic pseudo-random bytes (fast for large n)."""
    seed = n if seed is None else seed
    block = hashlib.sha256(b"apilb-%d" % seed).digest() * 2048  # 64 KiB
    reps, rest = divmod(n, len(block))
    out = bytearray(block * reps)
    out += block[:rest]
    # Make the stream non-periodic so a misplaced block would be caught.
    for i in range(0, n, 4099):
        out[i] = (i * 31 + seed) & 0xFF
    return bytes(out)


def listener(host, backlog=16):
    """A TCP listener on host, port chosen by the kernel: (socket, "host:port")."""
    s = socket.socket()
    s.bind((host, 0))
    s.listen(backlog)
    return s, "%s:%d" % (host, s.getsockname()[1])


def refused_addr(host="127.0.0.3"):
    """An address where nothing listens: connections are refused."""
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return "%s:%d" % (host, port)


class BlackHole:
    """A listener whose accept queue is full and never accepted: the kernel
    drops further SYNs, so a connect neither succeeds nor is refused."""

    def __init__(self, host="127.0.0.4"):
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.addr = "%s:%d" % (host, self.port)
        self.fillers = []
        for _ in range(8):
            f = socket.socket()
            f.setblocking(False)
            try:
                f.connect((host, self.port))
            except BlockingIOError:
                pass
            self.fillers.append(f)
        time.sleep(0.2)
        probe = socket.socket()
        probe.settimeout(0.5)
        try:
            probe.connect((host, self.port))
            raise Fail("black hole still accepts connections")
        except socket.timeout:
            pass
        finally:
            probe.close()

    def close(self):
        for f in self.fillers:
            f.close()
        self.sock.close()


def make_certs(d):
    """A CA and a server certificate for kubernetes and 127.0.0.1-4.
    Returns (ca, cert, key) paths."""
    ca, cakey = os.path.join(d, "ca.pem"), os.path.join(d, "ca.key")
    crt, key = os.path.join(d, "srv.pem"), os.path.join(d, "srv.key")
    ext = os.path.join(d, "san.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:kubernetes,IP:127.0.0.1,IP:127.0.0.2,IP:127.0.0.3,IP:127.0.0.4\n")
    q = {"check": True, "capture_output": True}
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=test-ca", "-keyout", cakey, "-out", ca], **q)
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=kube-apiserver",
                    "-keyout", key, "-out", crt + ".csr"], **q)
    subprocess.run(["openssl", "x509", "-req", "-in", crt + ".csr", "-CA", ca, "-CAkey", cakey,
                    "-CAcreateserial", "-days", "1", "-extfile", ext, "-out", crt], **q)
    return ca, crt, key


class TlsApiserver:
    """An HTTPS server in a thread answering /readyz with self.readyz (an HTTP
    status code, and self.readyz_body if set) and anything else with its
    name, like a kube-apiserver."""

    def __init__(self, host, cert, key, name=None):
        import http.server
        import ssl
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                if self.path == "/readyz":
                    outer.readyz_hits += 1
                    code, body = outer.readyz, b"ok" if outer.readyz == 200 else b"not ready"
                    if outer.readyz_body is not None:
                        body = outer.readyz_body
                else:
                    code, body = 200, outer.name.encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.readyz = 200
        self.readyz_body = None  # bytes, instead of "ok" / "not ready"
        self.readyz_hits = 0
        self.srv = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.srv.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
        self.port = self.srv.server_address[1]
        self.addr = "%s:%d" % (host, self.port)
        self.name = name or self.addr
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


def readyz_failing(*failed):
    """A kube-apiserver /readyz body with the named checks failing."""
    checks = ["ping", "log", "etcd", "etcd-readiness", "informer-sync",
              "poststarthook/start-apiserver-admission-initializer",
              "poststarthook/generic-apiserver-start-informers", "shutdown"]
    lines = ["[-]%s failed: reason withheld" % c if c in failed else "[+]%s ok" % c
             for c in checks]
    return ("\n".join(lines) + "\nreadyz check failed\n").encode()


class HttpsConn:
    """One kept-alive HTTPS connection (TLS verified against ca for the name
    kubernetes) to host:port, like a kubelet's: get() sends a request on it
    and returns (status, body); closed() tells whether the peer closed it."""

    def __init__(self, port, ca, host="127.0.0.1", timeout=5.0):
        import ssl
        ctx = ssl.create_default_context(cafile=ca)
        raw = socket.create_connection((host, port), timeout=timeout)
        self.s = ctx.wrap_socket(raw, server_hostname="kubernetes")
        self.buf = b""

    def get(self, path):
        self.s.sendall(b"GET %s HTTP/1.1\r\nHost: kubernetes\r\n\r\n" % path.encode())
        while b"\r\n\r\n" not in self.buf:
            data = self.s.recv(65536)
            if not data:
                raise Fail("connection closed before a response to %s" % path)
            self.buf += data
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status = int(head.split(b" ", 2)[1])
        m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        n = int(m.group(1)) if m else 0
        while len(self.buf) < n:
            data = self.s.recv(65536)
            if not data:
                raise Fail("connection closed inside a response to %s" % path)
            self.buf += data
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, body.decode(errors="replace")

    def closed(self, timeout=3.0):
        self.s.settimeout(timeout)
        try:
            return self.s.recv(1) == b""
        except socket.timeout:
            return False
        except OSError:
            return True

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


class Apilb:
    """An apilb child process; its log lines are collected in self.log."""

    def __init__(self, *args, env=None, listen="127.0.0.1:0", wait=True, preexec=None,
                 health="none", admin=False, log_level="debug"):
        # APILB_WRAPPER runs apilb under a tool, e.g. valgrind.
        self.args = os.environ.get("APILB_WRAPPER", "").split() + [APILB]
        if listen:
            self.args += ["--listen", listen]
        # admin: True for a port of its own, or the address to listen on.
        self.args += ["--admin-listen", admin if isinstance(admin, str) else
                      "127.0.0.1:0" if admin else "off"]
        if log_level is not None:
            self.args += ["--log-level", log_level]
        if health is not None:
            self.args += ["--health-check", health]
        self.args += list(args)
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        for k, v in os.environ.items():
            if k.startswith(("ASAN_", "UBSAN_", "LSAN_", "TSAN_")):
                full_env[k] = v
        full_env.update(env or {})
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=full_env, preexec_fn=preexec)
        _children.append(self.proc)
        self.log = []
        self.lock = threading.Lock()
        self.ports = []
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()
        if wait:
            # Slow starts: valgrind, sanitizers, a loaded CI machine.
            slow = os.environ.get("APILB_WRAPPER") or os.environ.get("APILB_SANITIZED")
            self.wait_log(r'msg="started"|"msg":"started"', 60 if slow else 20)
            for line in self.lines():
                m = re.search(r'msg="listening" addr=(\S+)|"msg":"listening","addr":"([^"]+)"', line)
                if m:
                    self.ports.append(int((m.group(1) or m.group(2)).rsplit(":", 1)[1]))
            self.port = self.ports[0]
            self.admin_port = None
            if admin:
                m = re.search(r'admin endpoint listening" addr=\S+:(\d+)',
                              self.wait_log(r'admin endpoint listening'))
                self.admin_port = int(m.group(1))

    def admin(self, path, method="GET"):
        """(status, body) of an admin request, with a real curl."""
        how = ["-I"] if method == "HEAD" else ["-X", method]
        p = subprocess.run(["curl", "-sS", *how, "-o", "-", "-w", "\n%{http_code}",
                            "--max-time", "5", "http://127.0.0.1:%d%s" % (self.admin_port, path)],
                           capture_output=True, text=True, timeout=10)
        if p.returncode != 0:
            raise Fail("curl %s: %s" % (path, p.stderr.strip()))
        body, _, code = p.stdout.rpartition("\n")
        return int(code), body

    def _read(self):
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            with self.lock:
                self.log.append(line)
            if os.environ.get("VERBOSE"):
                sys.stderr.write("apilb| " + line + "\n")

    def lines(self):
        with self.lock:
            return list(self.log)

    def wait_log(self, pattern, timeout=5.0, start=0):
        rx = re.compile(pattern)
        end = time.time() + timeout
        while time.time() < end:
            for line in self.lines()[start:]:
                if rx.search(line):
                    return line
            if self.proc.poll() is not None:
                time.sleep(0.1)
                for line in self.lines()[start:]:
                    if rx.search(line):
                        return line
                raise Fail("apilb exited (%s) before logging /%s/:\n%s" %
                           (self.proc.returncode, pattern, "\n".join(self.lines()[-30:])))
            time.sleep(0.02)
        raise Fail("apilb did not log /%s/ within %.1fs:\n%s" %
                   (pattern, timeout, "\n".join(self.lines()[-30:])))

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=10.0):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise Fail("apilb did not exit within %.1fs; its last log lines:\n%s" %
                       (timeout, "\n".join(self.lines()[-20:])))
        self.t.join(2)
        return rc

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            rc = self.wait_exit(35)
            check(rc == 0, "apilb exited %d after SIGTERM" % rc)
        self.check_sanitizers()

    def check_sanitizers(self):
        bad = [l for l in self.lines() if "runtime error:" in l or "Sanitizer" in l]
        check(not bad, "sanitizer report:\n" + "\n".join(bad[:40]))
        # Secrets the scenario handed to apilb must never reach its log.
        secrets = [x for x in os.environ.get("APILB_TEST_SECRETS", "").split(",") if x]
        leaked = [l for l in self.lines() if any(x in l for x in secrets)]
        check(not leaked, "a secret appeared in the log:\n" + "\n".join(leaked[:5]))

    def connect(self, timeout=5.0, host="127.0.0.1"):
        return socket.create_connection((host, self.port), timeout=timeout)


def metric(a, name):
    """The value of the sample name (with its labels, as /metrics prints it)
    from apilb a's /metrics, or None when there is none."""
    _, text = a.admin("/metrics")
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    return float(m.group(1)) if m else None


def raw_admin(a, data, timeout=5.0):
    """Sends raw bytes to the admin port; returns everything until it closes."""
    c = socket.create_connection(("127.0.0.1", a.admin_port), timeout=timeout)
    try:
        c.sendall(data)
        out = b""
        while True:
            try:
                got = c.recv(65536)
            except (ConnectionResetError, socket.timeout):
                return out
            if not got:
                return out
            out += got
    finally:
        c.close()


def exchange(port, data, host="127.0.0.1", mode=b"echo\n", timeout=30.0):
    """Sends mode + data, shuts down writing, returns everything read."""
    s = socket.create_connection((host, port), timeout=timeout)
    out = bytearray()
    err = []

    def reader():
        try:
            while True:
                d = s.recv(1 << 16)
                if not d:
                    return
                out.extend(d)
        except OSError as e:
            err.append(e)

    t = threading.Thread(target=reader)
    t.start()
    s.sendall(mode + data)
    s.shutdown(socket.SHUT_WR)
    t.join(timeout)
    s.close()
    if err:
        raise Fail("exchange failed: %r" % err[0])
    return bytes(out)


def whoami(port, host="127.0.0.1", keep=False, timeout=5.0):
    """Connects and returns the name of the backend reached (and the socket
    when keep is true)."""
    s = socket.create_connection((host, port), timeout=timeout)
    s.sendall(b"whoami\n")
    name = b""
    while not name.endswith(b"\n"):
        d = s.recv(256)
        if not d:
            s.close()
            raise Fail("connection closed before the backend answered")
        name += d
    if keep:
        return name.decode().strip(), s
    s.close()
    return name.decode().strip()


def roundtrip(s, data=b"ping"):
    """One echo round trip on an open whoami/echo connection."""
    s.sendall(data)
    got = b""
    while len(got) < len(data):
        d = s.recv(len(data) - len(got))
        if not d:
            raise Fail("connection closed during a round trip")
        got += d
    check(got == data, "round trip returned %r" % got)


def closed_by_peer(s, timeout=3.0):
    """True when the peer closes s (EOF or reset) within timeout."""
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def tmpdir():
    d = tempfile.mkdtemp(prefix="apilb-it-")
    atexit.register(lambda: subprocess.call(["rm", "-rf", d]))
    return d


def unreachable_kubeconfig(d):
    """A kubeconfig (path, in directory d) whose apiserver refuses
    connections: discovery runs, and backs off."""
    path = os.path.join(d, "kubeconfig")
    with open(path, "w") as f:
        f.write("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n"
                "    server: https://127.0.0.1:1\ncontexts:\n- name: c\n  context: "
                "{cluster: c, user: u}\ncurrent-context: c\nusers:\n- name: u\n  user: "
                "{token: t}\n")
    return path


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def scenario_in_netns(script, name, mount=False, timeout=240):
    """Runs scenario name of script (the caller's __file__) again in a
    network namespace of its own (unshare -n; with mount, a mount namespace
    too: unshare -n -m), in a session of its own so that a timeout kills the
    whole group, apilb too; fails when it fails or takes over timeout
    seconds, exits 77 (skipped) when it did or without root. True when it
    ran there; False when this process already runs inside (lo is up; the
    caller goes on with the scenario)."""
    if os.environ.get("APILB_IN_NETNS") == "1":
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        return False
    if os.geteuid() != 0:
        print("SKIP: needs root for a network namespace")
        sys.exit(77)
    unshare = ["unshare", "-n", "-m"] if mount else ["unshare", "-n"]
    p = subprocess.Popen(unshare + ["--", sys.executable, os.path.abspath(script), name],
                         env=dict(os.environ, APILB_IN_NETNS="1"), start_new_session=True)
    try:
        rc = p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        raise Fail("the scenario in its namespace took over %d s" % timeout)
    if rc == 77:
        sys.exit(77)
    check(rc == 0, "the scenario in its namespace failed (exit %d)" % rc)
    return True


def apiserver_netns(script):
    """Runs script (the caller's __file__) again, with its arguments, in a
    private network namespace (unshare -n) whose lo is up and carries
    10.213.0.2-9 and fd00:213::2-5, the fake apiservers' addresses (the API
    refuses loopback endpoints). Exits 77 (skipped) without root; does
    nothing when the file is only listing its scenarios (--list)."""
    if LISTING:
        return
    reexec_in_netns(script)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for i in range(2, 10):
        subprocess.run(["ip", "addr", "add", "10.213.0.%d/32" % i, "dev", "lo"], check=True)
    for i in range(2, 6):  # IPv6 apiservers (private fd00::/8, inside the namespace only)
        subprocess.run(["ip", "-6", "addr", "add", "fd00:213::%d/128" % i, "dev", "lo", "nodad"],
                       check=True)


# The scenarios by the module defining them, each in the order they are
# defined: module -> {name: (function, labels)}. Filled by @scenario; run()
# takes the running file's (__main__), not those of a test file it imports.
_scenarios = {}

# "--list" on the command line: the file only says which scenarios it has
# (name, then its labels, one scenario a line), for CMake at configure time.
# Nothing is started and no namespace entered (reexec_in_netns returns).
LISTING = sys.argv[1:] == ["--list"]


def scenario(*args, name=None):
    """Registers a scenario function under its name (or name=), for run()
    and for CTest. Used bare (@scenario) or with CTest labels
    (@scenario("threads")): "threads" puts it in the ThreadSanitizer build's
    selection (scripts/test.sh, ctest -L threads)."""
    def register(fn, labels):
        key = name or fn.__name__
        mine = _scenarios.setdefault(fn.__module__, {})
        if key in mine:
            raise ValueError("scenario %s registered twice" % key)
        for label in labels:
            if not re.fullmatch(r"[a-z][a-z0-9_-]*", label):
                raise ValueError("scenario %s: bad label %r" % (key, label))
        mine[key] = (fn, tuple(labels))
        return fn

    if len(args) == 1 and callable(args[0]):
        return register(args[0], ())
    if not all(isinstance(a, str) for a in args):
        raise TypeError("@scenario takes label strings, or is used bare")
    return lambda fn: register(fn, args)


def run(scenarios=None):
    """Runs the scenarios named on the command line (or all of them); with
    --list prints them. scenarios: a dict name -> function, for a file not
    yet using @scenario; by default the ones registered with @scenario."""
    table = ({k: (f, ()) for k, f in scenarios.items()} if scenarios is not None
             else _scenarios.get("__main__", {}))
    if LISTING:
        for key, (_, labels) in table.items():
            print(" ".join((key,) + labels))
        return
    names = sys.argv[1:] or sorted(table)
    for name in names:
        if name not in table:
            print("unknown scenario %s; known: %s" % (name, " ".join(sorted(table))))
            sys.exit(2)
        t0 = time.time()
        try:
            table[name][0]()
        except Fail as e:
            print("FAIL %s: %s" % (name, e))
            _cleanup()
            sys.exit(1)
        print("PASS %s (%.2fs)" % (name, time.time() - t0))


def reexec_in_netns(script):
    """Runs script again, with the same arguments, in a network namespace of
    its own (unshare -n), unless this process already runs in one; exits 77
    (skip) without root. Does nothing when the file is only listing its
    scenarios (--list)."""
    if LISTING or os.environ.get("APILB_IN_NETNS") == "1":
        return
    if os.geteuid() != 0:
        print("SKIP: needs root for a network namespace")
        sys.exit(77)
    env = dict(os.environ, APILB_IN_NETNS="1")
    os.execvpe("unshare", ["unshare", "-n", "--", sys.executable, os.path.abspath(script)]
               + sys.argv[1:], env)
