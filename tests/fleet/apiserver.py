# SPDX-License-Identifier: Apache-2.0
"""A light kube-apiserver for the fleet simulation (tests/fleet/README.md).

One asyncio process per apiserver, in its own network namespace. It speaks
TLS itself (ssl.SSLObject over memory BIOs, so that a "slow" apiserver can
hold back every received byte, handshake included), HTTP/2 for the node
clients (ALPN h2, python3-h2) and HTTP/1.1 for the proxies' health checks
and apilb's watcher. What it serves:

  GET /readyz /livez /healthz   200 "ok"; /readyz is 500 from the moment a
                                graceful shutdown starts (kube-apiserver's
                                `shutdown` readyz check)
  PUT .../kube-node-lease/leases/NAME    a node lease renewal: 200 + the lease
  GET /api/v1/pods?watch=true...         a long-lived watch (BOOKMARK events)
  GET /apis/discovery.k8s.io/v1/namespaces/default/endpointslices
                                the `kubernetes` EndpointSlice, list and
                                watch (the members are set by the harness,
                                which plays etcd and the endpoint reconciler)

Graceful shutdown (control command "shutdown"): readyz fails at once; the
server keeps serving for --shutdown-delay; then for --retry-after-window
every request that is not a health check gets 429, Retry-After: 5 and
Connection: close (GOAWAY on HTTP/2), as with --shutdown-send-retry-after;
then every connection is closed and the process exits.

Control: a Unix socket (--control PATH, one JSON object a line, answer
"ok"): {"cmd": "members", "ips": [...], "rv": N}, {"cmd": "slow", "ms": N},
{"cmd": "shutdown"}. Statistics: one JSON line a second to --stats PATH."""

import argparse
import asyncio
import collections
import json
import os
import signal
import socket
import ssl
import struct
import sys
import time
import urllib.parse

import h2.config
import h2.connection
import h2.events
import h2.exceptions

ARGS = None
SERVER = None


def zone_of(ip, zones):
    """The zone of apiserver 10.77.K.2 when the fleet has `zones` zones:
    zone-a, zone-b, ... by K - 1 modulo zones (apiserver 4, the replacement
    of apiserver 1, lands in apiserver 1's zone)."""
    return "zone-" + chr(ord("a") + (int(ip.split(".")[2]) - 1) % zones)


class Server:
    def __init__(self, args):
        self.args = args
        self.ip, port = args.listen.rsplit(":", 1)
        self.port = int(port)
        self.ready = True      # /readyz
        self.rejecting = False  # 429 + Connection: close
        self.delay = 0.0       # seconds every received byte is held back
        self.members = []
        self.rv = 1
        self.slice_watchers = set()
        self.pod_watchers = set()
        self.conns = set()
        self.stats = self.zero()

    @staticmethod
    def zero():
        return {"new_at": {}, "checks": collections.Counter(),
                "checks_resumed": collections.Counter(), "leases": 0, "handshakes": 0,
                "resumed": 0}

    def slice(self):
        return {"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
                "metadata": {"name": "kubernetes", "namespace": "default",
                             "uid": "fleet-slice", "resourceVersion": str(self.rv),
                             "generation": self.rv,
                             "labels": {"kubernetes.io/service-name": "kubernetes"}},
                "addressType": "IPv4",
                "endpoints": [dict({"addresses": [ip], "conditions": {"ready": True}},
                                   **({"zone": zone_of(ip, self.args.zones)}
                                      if self.args.zones else {}))
                              for ip in sorted(self.members)],
                "ports": [{"name": "https", "protocol": "TCP", "port": self.port}]}

    def set_members(self, ips, rv):
        if sorted(ips) == sorted(self.members) and rv <= self.rv:
            return
        self.members = list(ips)
        self.rv = max(rv, self.rv + 1)
        ev = json.dumps({"type": "MODIFIED", "object": self.slice()},
                        separators=(",", ":")).encode() + b"\n"
        for w in list(self.slice_watchers):
            w(ev)

    async def shutdown(self):
        """kube-apiserver's graceful shutdown, in the order the real one takes."""
        self.ready = False
        await asyncio.sleep(self.args.shutdown_delay)
        self.rejecting = True
        await asyncio.sleep(self.args.retry_after_window)
        for c in list(self.conns):
            c.goaway()
        await asyncio.sleep(0.1)
        for c in list(self.conns):
            c.close()
        self.flush_stats()
        os._exit(0)

    def flush_stats(self):
        active = collections.Counter(c.cls for c in self.conns)
        line = {"t": round(time.time(), 3), "ready": self.ready, "active": dict(active),
                "new_at": {c: dict(v) for c, v in self.stats["new_at"].items()},
                "checks": dict(self.stats["checks"]),
                "checks_resumed": dict(self.stats["checks_resumed"]),
                "leases": self.stats["leases"], "handshakes": self.stats["handshakes"],
                "resumed": self.stats["resumed"]}
        self.stats = self.zero()
        with open(self.args.stats, "a") as f:
            f.write(json.dumps(line, separators=(",", ":")) + "\n")

    async def stats_loop(self):
        while True:
            await asyncio.sleep(1.0 - (time.time() % 1.0))
            self.flush_stats()


def arrival(transport):
    """When the connection's first bytes reached the kernel, in wall-clock
    seconds: now less TCP_INFO's tcpi_last_data_recv (ms, offset 52 in
    struct tcp_info). An event loop that stalls for two seconds accepts two
    seconds of arrivals at once; counting them by the second they were
    accepted would make a storm of the stall."""
    now = time.time()
    sock = transport.get_extra_info("socket")
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        return now - struct.unpack_from("I", info, 52)[0] / 1000.0
    except (OSError, AttributeError, struct.error):
        return now


def classify(path, ua):
    """Which system and role a connection belongs to, from its first request."""
    if ua.startswith("fleet/"):
        return ua.split("/")[1]          # a node client: its system's name
    if path.startswith("/readyz"):
        return "check-readyz"
    if path.startswith("/healthz"):
        return "check-healthz"
    if "endpointslices" in path:
        return "watcher"
    return "other"


class Conn(asyncio.Protocol):
    """One TCP connection: TLS over memory BIOs, then HTTP/2 or HTTP/1.1."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.cls = "handshake"
        self.classified = False
        self.transport = None
        self.inq = collections.deque()
        self.draining = False
        self.closed = False
        self.h2 = None
        self.h1buf = b""
        self.streams = {}
        self.resumed = False

    # -- transport and TLS ------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport
        self.inc = ssl.MemoryBIO()
        self.out = ssl.MemoryBIO()
        self.tls = self.ctx.wrap_bio(self.inc, self.out, server_side=True)
        self.handshaken = False
        self.arrived = arrival(transport)
        SERVER.conns.add(self)

    def data_received(self, data):
        if SERVER.delay > 0:
            self.inq.append((time.monotonic() + SERVER.delay, data))
            if not self.draining:
                self.draining = True
                asyncio.get_running_loop().call_later(SERVER.delay, self.drain_delayed)
        else:
            self.feed(data)

    def drain_delayed(self):
        now = time.monotonic()
        while self.inq and self.inq[0][0] <= now + 0.001:
            self.feed(self.inq.popleft()[1])
        if self.inq:
            asyncio.get_running_loop().call_later(self.inq[0][0] - now, self.drain_delayed)
        else:
            self.draining = False

    def feed(self, data):
        if self.closed:
            return
        self.inc.write(data)
        if not self.handshaken:
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                self.flush()
                return
            except (ssl.SSLError, OSError):
                self.close()
                return
            self.handshaken = True
            self.resumed = self.tls.session_reused
            SERVER.stats["handshakes"] += 1
            SERVER.stats["resumed"] += int(self.resumed)
            if self.tls.selected_alpn_protocol() == "h2":
                self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(
                    client_side=False, header_encoding="utf-8"))
                self.h2.initiate_connection()
            self.flush()
        while True:
            try:
                plain = self.tls.read(65536)
            except ssl.SSLWantReadError:
                break
            except (ssl.SSLError, OSError):
                self.close()
                return
            if not plain:
                self.close()
                return
            if self.h2 is not None:
                self.h2_data(plain)
            else:
                self.h1_data(plain)
            if self.closed:
                return
        self.flush()

    def send(self, plain):
        if self.closed:
            return
        try:
            self.tls.write(plain)
        except (ssl.SSLError, OSError):
            self.close()
            return
        self.flush()

    def flush(self):
        if self.h2 is not None and not self.closed:
            d = self.h2.data_to_send()
            if d:
                try:
                    self.tls.write(d)
                except (ssl.SSLError, OSError):
                    self.close()
                    return
        d = self.out.read()
        if d and not self.closed:
            self.transport.write(d)

    def eof_received(self):
        self.close()

    def connection_lost(self, exc):
        self.closed = True
        self.cleanup()

    def close(self):
        if not self.closed:
            self.closed = True
            self.transport.close()
        self.cleanup()

    def cleanup(self):
        SERVER.conns.discard(self)
        for w in list(self.streams.values()):
            if callable(w):
                SERVER.pod_watchers.discard(w)
                SERVER.slice_watchers.discard(w)
        self.streams.clear()
        if getattr(self, "h1watch", None) is not None:
            SERVER.slice_watchers.discard(self.h1watch)
            SERVER.pod_watchers.discard(self.h1watch)

    def goaway(self):
        if self.h2 is not None and not self.closed:
            try:
                self.h2.close_connection()
            except h2.exceptions.ProtocolError:
                pass
            self.flush()

    def classify(self, path, ua):
        if not self.classified:
            self.classified = True
            self.cls = classify(path, ua)
            at = SERVER.stats["new_at"].setdefault(self.cls, collections.Counter())
            at[str(int(self.arrived))] += 1

    # -- requests, whatever the protocol ------------------------------------
    def route(self, method, target, ua):
        """Returns (status, headers, body) or ("watch", kind, query)."""
        url = urllib.parse.urlsplit(target)
        q = dict(urllib.parse.parse_qsl(url.query))
        path = url.path
        self.classify(path, ua)
        if path in ("/readyz", "/livez", "/healthz"):
            SERVER.stats["checks"][path[1:]] += 1
            SERVER.stats["checks_resumed"][path[1:]] += int(self.resumed)
            if path == "/readyz" and not SERVER.ready:
                return 500, [], b"[-]shutdown failed: reason withheld\nreadyz check failed\n"
            return 200, [], b"ok"
        if SERVER.rejecting:  # apiserver pkg/server/filters/with_retry_after.go
            return 429, [("retry-after", "5"), ("connection", "close")], json.dumps({
                "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 429,
                "reason": "TooManyRequests",
                "message": "The apiserver is shutting down, please try again later."}).encode()
        if path.startswith("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/") \
                and method == "PUT":
            SERVER.stats["leases"] += 1
            name = path.rsplit("/", 1)[1]
            return 200, [], json.dumps({
                "kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
                "metadata": {"name": name, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
                         "renewTime": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z",
                                                    time.gmtime())},
                "servedBy": SERVER.ip}).encode()
        if path == "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices":
            if q.get("watch") in ("1", "true"):
                return "watch", "slice", q
            return 200, [], json.dumps({
                "kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1",
                "metadata": {"resourceVersion": str(SERVER.rv)},
                "items": [SERVER.slice()]}).encode()
        if path == "/api/v1/pods" and q.get("watch") in ("1", "true"):
            return "watch", "pod", q
        return 404, [], b'{"kind":"Status","code":404,"reason":"NotFound"}'

    def watch_start(self, kind, q, emit):
        """Starts a watch stream; emit(bytes or None) writes an event or ends it."""
        if kind == "slice":
            rv = int(q.get("resourceVersion") or 0)
            if rv < SERVER.rv:
                emit(json.dumps({"type": "MODIFIED", "object": SERVER.slice()},
                                separators=(",", ":")).encode() + b"\n")
            SERVER.slice_watchers.add(emit)
        else:
            SERVER.pod_watchers.add(emit)
        timeout = float(q.get("timeoutSeconds") or 1800)
        loop = asyncio.get_running_loop()
        loop.call_later(timeout, lambda: emit(None))

    # -- HTTP/2 -------------------------------------------------------------
    def h2_data(self, plain):
        try:
            events = self.h2.receive_data(plain)
        except h2.exceptions.ProtocolError:
            self.close()
            return
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                self.streams[ev.stream_id] = dict(ev.headers)
            elif isinstance(ev, h2.events.DataReceived):
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                hdrs = self.streams.get(ev.stream_id)
                if isinstance(hdrs, dict):
                    self.h2_request(ev.stream_id, hdrs)
            elif isinstance(ev, h2.events.StreamReset):
                w = self.streams.pop(ev.stream_id, None)
                if callable(w):
                    SERVER.pod_watchers.discard(w)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.flush()
                self.close()
                return
        self.flush()

    def h2_request(self, sid, hdrs):
        r = self.route(hdrs.get(":method", "GET"), hdrs.get(":path", "/"),
                       hdrs.get("user-agent", ""))
        if r[0] == "watch":
            self.h2.send_headers(sid, [(":status", "200"), ("content-type", "application/json")])

            def emit(data, sid=sid):
                if self.closed or self.streams.get(sid) is not emit:
                    return
                try:
                    if data is None:
                        self.streams.pop(sid, None)
                        SERVER.pod_watchers.discard(emit)
                        self.h2.end_stream(sid)
                    else:
                        self.h2.send_data(sid, data)
                except (h2.exceptions.ProtocolError, h2.exceptions.FlowControlError,
                        KeyError):
                    pass
                self.flush()
            self.streams[sid] = emit
            self.watch_start(r[1], r[2], emit)
            return
        self.streams.pop(sid, None)
        code, headers, body = r
        close = any(k == "connection" for k, _ in headers)
        headers = [(k, v) for k, v in headers if k != "connection"]
        try:
            self.h2.send_headers(sid, [(":status", str(code)),
                                       ("content-type", "application/json"),
                                       ("content-length", str(len(body)))] + headers)
            self.h2.send_data(sid, body, end_stream=True)
        except (h2.exceptions.ProtocolError, h2.exceptions.FlowControlError):
            pass
        if close:  # Go's HTTP/2 server turns "Connection: close" into GOAWAY
            self.goaway()

    # -- HTTP/1.1 -----------------------------------------------------------
    def h1_data(self, plain):
        self.h1buf += plain
        if len(self.h1buf) > 1 << 20:
            self.close()
            return
        while b"\r\n\r\n" in self.h1buf and not self.closed:
            head, rest = self.h1buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split()
            if len(parts) != 3:
                self.close()
                return
            method, target, version = parts
            hdrs = {}
            for ln in lines[1:]:
                k, _, v = ln.partition(":")
                hdrs[k.strip().lower()] = v.strip()
            n = int(hdrs.get("content-length", "0") or 0)
            if len(rest) < n:
                return
            self.h1buf = rest[n:]
            r = self.route(method, target, hdrs.get("user-agent", ""))
            keep = version == "HTTP/1.1" and hdrs.get("connection", "").lower() != "close"
            if r[0] == "watch":
                self.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n")

                def emit(data):
                    if self.closed:
                        return
                    if data is None:
                        self.send(b"0\r\n\r\n")
                        SERVER.slice_watchers.discard(emit)
                        SERVER.pod_watchers.discard(emit)
                        self.h1watch = None
                        if not keep:
                            self.close()
                        return
                    self.send(b"%x\r\n%s\r\n" % (len(data), data))
                self.h1watch = emit
                self.watch_start(r[1], r[2], emit)
                return
            code, headers, body = r
            close = not keep or any(k == "connection" for k, _ in headers)
            reason = {200: "OK", 404: "Not Found", 429: "Too Many Requests",
                      500: "Internal Server Error"}.get(code, "X")
            hl = "".join("%s: %s\r\n" % (k.title(), v) for k, v in headers
                         if k != "connection")
            self.send(("HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                       "%s%s\r\n" % (code, reason, len(body), hl,
                                     "Connection: close\r\n" if close else "")).encode() + body)
            if close:
                self.close()
                return


async def bookmarks():
    """A BOOKMARK on every pod watch every --bookmark-interval seconds."""
    while True:
        await asyncio.sleep(ARGS.bookmark_interval)
        ev = json.dumps({"type": "BOOKMARK", "object": {
            "kind": "Pod", "apiVersion": "v1",
            "metadata": {"resourceVersion": str(SERVER.rv)}}}).encode() + b"\n"
        for w in list(SERVER.pod_watchers):
            w(ev)


async def control_client(reader, writer):
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            cmd = json.loads(line)
            if cmd["cmd"] == "members":
                SERVER.set_members(cmd["ips"], int(cmd["rv"]))
            elif cmd["cmd"] == "slow":
                SERVER.delay = cmd["ms"] / 1000.0
            elif cmd["cmd"] == "shutdown":
                asyncio.get_running_loop().create_task(SERVER.shutdown())
            writer.write(b"ok\n")
            await writer.drain()
    except (ConnectionError, ValueError, KeyError):
        pass
    writer.close()


async def main():
    global SERVER
    SERVER = Server(ARGS)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(ARGS.cert, ARGS.key)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    SERVER.members = ARGS.members.split(",") if ARGS.members else []
    SERVER.rv = ARGS.rv
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(lambda: Conn(ctx), SERVER.ip, SERVER.port, backlog=4096,
                                   reuse_address=True)
    ctl = await asyncio.start_unix_server(control_client, ARGS.control)
    loop.create_task(SERVER.stats_loop())
    loop.create_task(bookmarks())
    loop.add_signal_handler(signal.SIGTERM, lambda: loop.create_task(SERVER.shutdown()))
    with open(ARGS.ready_file + ".tmp", "w") as f:
        f.write("ready\n")
    os.rename(ARGS.ready_file + ".tmp", ARGS.ready_file)
    async with srv, ctl:
        await asyncio.Future()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--control", required=True)
    p.add_argument("--stats", required=True)
    p.add_argument("--ready-file", required=True)
    p.add_argument("--members", default="")
    p.add_argument("--rv", type=int, default=1)
    p.add_argument("--shutdown-delay", type=float, default=5.0)
    p.add_argument("--retry-after-window", type=float, default=2.0)
    p.add_argument("--bookmark-interval", type=float, default=60.0)
    p.add_argument("--zones", type=int, default=0,
                   help="publish endpoints[].zone, apiservers spread over this many zones")
    ARGS = p.parse_args()
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
