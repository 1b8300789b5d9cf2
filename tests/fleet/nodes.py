# SPDX-License-Identifier: Apache-2.0
"""The node-local clients of the fleet simulation: one asyncio process runs
many simulated nodes, each one a kubelet as client-go makes it behave
(tests/fleet/README.md, "The client model", says where each number comes
from):

- one long-lived TLS connection over HTTP/2 (ALPN h2, python3-h2) to the
  node's own load balancer, carrying a long-lived watch and the node lease;
- a lease renewal (PUT) every 10 s, jittered 4 %, each request with a 10 s
  timeout; a failed renewal is retried at once up to 5 times, then with
  backoff from 200 ms doubling to 7 s until one succeeds;
- a dead connection is noticed only as client-go notices it: a closed or
  reset socket at once; silence (a black hole) only by the HTTP/2 health
  check, a PING after 30 s without a frame read and 15 s for its answer;
  a request timeout resets the stream and keeps the connection;
- GOAWAY: the connection takes no new requests (the next dials anew);
- the watch is re-established after about 1 s (the reflector's backoff).

Every outcome is one JSON line in --events: {"t", "node", "ev", ...} with
ev one of lease_ok (lat, by, conn), lease_fail (lat, why, conn, first),
lease_retry_after (status, wait, conn): a 429 or 5xx answered with Retry-After,
which client-go's REST client retries itself (the lease controller never sees
it), watch_up (conn, by), watch_down (why, conn), dial_fail (why), and with
--admin-poll table (ups: the addresses in apilb's GET /upstreams, on change)."""

import argparse
import asyncio
import json
import random
import resource
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions

LEASE_RENEW_S = 10.0       # kubelet: nodeLeaseDurationSeconds 40 x 0.25
LEASE_JITTER = 0.04        # wait.JitterUntil(..., 0.04, ...) in the lease controller
REQUEST_TIMEOUT_S = 10.0   # heartbeat client Timeout = min(10 s status update, 40 s lease)
LEASE_RETRIES = 5          # maxUpdateRetries in the lease controller
BACKOFF_MAX_S = 7.0        # maxBackoff of backoffEnsureLease
READ_IDLE_S = 30.0         # client-go HTTP/2 ReadIdleTimeout
PING_TIMEOUT_S = 15.0      # client-go HTTP/2 PingTimeout
WATCH_BACKOFF_S = 1.0      # reflector's initial backoff (800 ms) plus jitter
H2_ROUNDTRIP_TRIES = 7    # x/net/http2 Transport.RoundTripOpt: up to 6 retries of a
                           # request its connection never took (shouldRetryRequest)
NOT_SENT = ("unusable", "goaway")  # errClientConnUnusable, errClientConnGotGoAway
RETRY_AFTER_MAX = 10       # client-go rest.Request maxRetries: a 429 or 5xx with a
                           # Retry-After header is retried by the REST client itself
                           # (checkWait, retryAfterSeconds), after sleeping the header's value

OUT = []
CONN_IDS = iter(range(1, 1 << 62))


def emit(**kw):
    kw["t"] = round(time.time(), 3)
    OUT.append(json.dumps(kw, separators=(",", ":")))


class Dead(Exception):
    pass


class H2Conn:
    """One client HTTP/2 connection with client-go's health check."""

    def __init__(self, node, reader, writer):
        self.node = node
        self.reader = reader
        self.writer = writer
        self.id = next(CONN_IDS)
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8"))
        self.h2.initiate_connection()
        self.streams = {}        # stream id -> Stream
        self.dead = False
        self.goaway = False
        self.failed_once = False  # a lease request already failed on it
        self.last_read = time.monotonic()
        self.ping_sent = None
        self.flush()
        self.task = asyncio.get_running_loop().create_task(self.read_loop())
        self.ptask = asyncio.get_running_loop().create_task(self.ping_loop())

    def flush(self):
        d = self.h2.data_to_send()
        if d and not self.dead:
            self.writer.write(d)

    def usable(self):
        return not self.dead and not self.goaway

    async def read_loop(self):
        why = "eof"
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                self.last_read = time.monotonic()
                try:
                    events = self.h2.receive_data(data)
                except h2.exceptions.ProtocolError:
                    why = "protocol"
                    break
                for ev in events:
                    self.event(ev)
                self.flush()
        except (ConnectionError, OSError, ssl.SSLError) as e:
            why = type(e).__name__
        except asyncio.CancelledError:
            why = "ping-timeout"
        self.kill(why)

    async def ping_loop(self):
        """http2.Transport ReadIdleTimeout/PingTimeout as client-go sets them."""
        while not self.dead:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            if self.ping_sent is not None:
                if now - self.ping_sent > PING_TIMEOUT_S:
                    self.task.cancel()
                    return
            elif now - self.last_read > READ_IDLE_S:
                self.ping_sent = now
                try:
                    self.h2.ping(b"fleetpng")
                    self.flush()
                except h2.exceptions.ProtocolError:
                    pass

    def event(self, ev):
        if isinstance(ev, h2.events.PingAckReceived):
            self.ping_sent = None
        elif isinstance(ev, h2.events.ResponseReceived):
            s = self.streams.get(ev.stream_id)
            if s:
                s.on_headers(dict(ev.headers))
        elif isinstance(ev, h2.events.DataReceived):
            self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            s = self.streams.get(ev.stream_id)
            if s:
                s.on_data(ev.data)
        elif isinstance(ev, h2.events.StreamEnded):
            s = self.streams.pop(ev.stream_id, None)
            if s:
                s.on_end("end")
        elif isinstance(ev, h2.events.StreamReset):
            s = self.streams.pop(ev.stream_id, None)
            if s:
                s.on_end("reset")
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway = True
            if self.node.conn is self:
                self.node.conn = None
            # streams above last_stream_id were not processed
            for sid in [s for s in self.streams if s > ev.last_stream_id]:
                self.streams.pop(sid).on_end("goaway")

    def kill(self, why):
        if self.dead:
            return
        self.dead = True
        if self.node.conn is self:
            self.node.conn = None
        try:
            self.writer.transport.abort()
        except Exception:
            pass
        for s in list(self.streams.values()):
            s.on_end("conn:" + why)
        self.streams.clear()
        self.ptask.cancel()

    def request(self, method, path, body=b""):
        if not self.usable():
            raise Dead("unusable")
        sid = self.h2.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", "https"), (":authority", "kubernetes"),
                (":path", path), ("user-agent", self.node.ua), ("accept", "application/json")]
        if body:
            hdrs.append(("content-type", "application/json"))
            hdrs.append(("content-length", str(len(body))))
        s = Stream()
        self.streams[sid] = s
        try:
            self.h2.send_headers(sid, hdrs, end_stream=not body)
            if body:
                self.h2.send_data(sid, body, end_stream=True)
        except h2.exceptions.ProtocolError:
            self.streams.pop(sid, None)
            raise Dead("protocol")
        self.flush()
        s.sid = sid
        return s

    def reset(self, s):
        if s.sid in self.streams:
            self.streams.pop(s.sid)
            try:
                self.h2.reset_stream(s.sid)
                self.flush()
            except h2.exceptions.ProtocolError:
                pass


class Stream:
    def __init__(self):
        self.headers = asyncio.get_running_loop().create_future()
        self.done = asyncio.get_running_loop().create_future()
        self.body = b""
        self.sid = None

    def on_headers(self, h):
        if not self.headers.done():
            self.headers.set_result(h)

    def on_data(self, d):
        if len(self.body) < 1 << 16:
            self.body += d

    def on_end(self, why):
        if not self.headers.done():
            self.headers.set_exception(Dead(why))
        if not self.done.done():
            self.done.set_result(why)


class Call:
    """The connection and stream of a request in flight."""
    conn = None
    stream = None


class Node:
    def __init__(self, name, system, host, port, ctx):
        self.name = name
        self.system = system
        self.ua = "fleet/%s/%s" % (system, name)
        self.host = host
        self.port = port
        self.ctx = ctx
        self.conn = None
        self.dialing = None

    async def get_conn(self):
        if self.conn is not None and self.conn.usable():
            return self.conn
        if self.dialing is None:
            self.dialing = asyncio.get_running_loop().create_task(self.dial())
        try:
            return await asyncio.shield(self.dialing)
        finally:
            if self.dialing is not None and self.dialing.done():
                self.dialing = None

    async def roundtrip(self, call, method, path, body=b""):
        """Sends a request and waits for its answer's headers, as Go's HTTP/2
        transport does: a request that its connection never took (the
        connection picked had since got GOAWAY or closed, or the GOAWAY's
        last stream id is below it) is no error; it goes to another
        connection, a new dial if need be (RoundTripOpt, canRetryError on
        errClientConnUnusable and errClientConnGotGoAway). call.conn and
        call.stream are the attempt in flight, for the caller's timeout."""
        for retry in range(H2_ROUNDTRIP_TRIES):
            if retry > 1:  # the first retry at once, then 1 s, 2 s, ... (+10 % jitter)
                await asyncio.sleep((1 << (retry - 2)) * (1 + 0.1 * random.random()))
            call.conn = call.stream = None
            call.conn = await self.get_conn()
            try:
                call.stream = call.conn.request(method, path, body)
                return await asyncio.shield(call.stream.headers)
            except Dead as e:
                if str(e) not in NOT_SENT:
                    raise
                emit(node=self.name, ev="h2_retry", why=str(e), conn=call.conn.id)
        raise Dead("unusable")

    async def dial(self):
        try:
            r, w = await asyncio.open_connection(self.host, self.port, ssl=self.ctx,
                                                 server_hostname="kubernetes",
                                                 ssl_handshake_timeout=REQUEST_TIMEOUT_S)
        except (OSError, ssl.SSLError, asyncio.TimeoutError, ConnectionError) as e:
            emit(node=self.name, ev="dial_fail", why=type(e).__name__)
            raise Dead("dial")
        if w.get_extra_info("ssl_object").selected_alpn_protocol() != "h2":
            w.transport.abort()
            raise Dead("alpn")
        self.conn = H2Conn(self, r, w)
        return self.conn

    async def lease_once(self):
        """One Update of the lease as client-go's REST client makes it: each
        attempt with its own 10 s timeout; an answer 429 or 5xx with
        Retry-After is slept out and retried (up to 10 times) inside the
        client, so only the last attempt's outcome reaches the controller."""
        t0 = time.monotonic()
        for _ in range(RETRY_AFTER_MAX):
            r = await self.lease_attempt(t0)
            if r is True or r is False:
                return r
            await asyncio.sleep(r)
        return await self.lease_attempt(t0, retry_after=False) is True

    async def lease_attempt(self, t0, retry_after=True):
        """True (renewed), False (failed) or the seconds a Retry-After asks for."""
        ta = time.monotonic()
        body = json.dumps({"kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
                           "metadata": {"name": self.name, "namespace": "kube-node-lease"},
                           "spec": {"holderIdentity": self.name,
                                    "leaseDurationSeconds": 40}}).encode()
        why = None
        call = Call()
        try:
            h = await asyncio.wait_for(self.roundtrip(
                call, "PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/"
                + self.name, body), REQUEST_TIMEOUT_S)
            conn, s = call.conn, call.stream
            left = REQUEST_TIMEOUT_S - (time.monotonic() - ta)
            await asyncio.wait_for(asyncio.shield(s.done), max(left, 0.001))
            code = h.get(":status")
            wait = h.get("retry-after", "")
            if retry_after and wait.isdigit() and (code == "429" or code.startswith("5")):
                emit(node=self.name, ev="lease_retry_after", status=int(code), wait=int(wait),
                     conn=conn.id)
                return int(wait)
            if code == "200":
                by = json.loads(s.body).get("servedBy", "?")
                emit(node=self.name, ev="lease_ok", lat=round(time.monotonic() - t0, 4),
                     by=by, conn=conn.id)
                return True
            why = "status-" + str(code)
        except asyncio.TimeoutError:
            why = "timeout"
            if call.conn is not None and call.stream is not None:
                call.conn.reset(call.stream)
        except Dead as e:
            why = str(e)
        conn = call.conn
        first = False
        if conn is not None:
            first = not conn.failed_once
            conn.failed_once = True
        emit(node=self.name, ev="lease_fail", lat=round(time.monotonic() - t0, 4), why=why,
             conn=conn.id if conn else None, first=first)
        return False

    async def lease_loop(self):
        await asyncio.sleep(random.random() * LEASE_RENEW_S)
        while True:
            ok = False
            for _ in range(LEASE_RETRIES):
                if await self.lease_once():
                    ok = True
                    break
            sleep = 0.1
            while not ok:
                sleep = min(2 * sleep, BACKOFF_MAX_S)
                await asyncio.sleep(sleep)
                ok = await self.lease_once()
            await asyncio.sleep(LEASE_RENEW_S * (1 + random.random() * LEASE_JITTER))

    async def watch_loop(self):
        await asyncio.sleep(random.random() * 2)
        while True:
            timeout = random.randint(300, 600)
            t0 = time.monotonic()
            call = Call()
            try:
                h = await asyncio.wait_for(self.roundtrip(
                    call, "GET", "/api/v1/pods?watch=true&allowWatchBookmarks=true"
                    "&fieldSelector=spec.nodeName%%3D%s&timeoutSeconds=%d"
                    % (self.name, timeout)), REQUEST_TIMEOUT_S)
                conn, s = call.conn, call.stream
                if h.get(":status") != "200":
                    await asyncio.shield(s.done)
                    raise Dead("status-" + str(h.get(":status")))
                emit(node=self.name, ev="watch_up", conn=conn.id)
                why = await s.done
                if time.monotonic() - t0 < timeout - 1:
                    emit(node=self.name, ev="watch_down", why=why, conn=conn.id)
            except asyncio.TimeoutError:
                emit(node=self.name, ev="watch_down", why="timeout", conn=None)
            except Dead as e:
                emit(node=self.name, ev="watch_down", why=str(e), conn=None)
            await asyncio.sleep(WATCH_BACKOFF_S * (0.8 + 0.4 * random.random()))


async def admin_poll(node, port=9444, every=1.0):
    """apilb's table as its admin endpoint shows it (GET /upstreams), one
    `table` event each time its set of addresses, or of usable ones (healthy,
    new connections may go there), changes."""
    last = None
    await asyncio.sleep(random.random() * every)
    while True:
        ups = None
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(node.host, port), 2.0)
            w.write(b"GET /upstreams HTTP/1.1\r\nHost: apilb\r\nConnection: close\r\n\r\n")
            data = await asyncio.wait_for(r.read(1 << 20), 2.0)
            w.close()
            body = data.split(b"\r\n\r\n", 1)[1]
            table = json.loads(body)["upstreams"]
            ups = (sorted(u["address"] for u in table),
                   sorted(u["address"] for u in table if u.get("usable")))
        except (OSError, asyncio.TimeoutError, ValueError, KeyError, IndexError):
            pass
        if ups is not None and ups != last:
            emit(node=node.name, ev="table", ups=ups[0], usable=ups[1])
            last = ups
        await asyncio.sleep(every)


async def flusher(path):
    with open(path, "a") as f:
        while True:
            await asyncio.sleep(0.5)
            if OUT:
                f.write("\n".join(OUT) + "\n")
                f.flush()
                OUT.clear()


async def main(args):
    ctx = ssl.create_default_context(cafile=args.ca)
    ctx.set_alpn_protocols(["h2"])
    nodes = []
    for spec in args.node:
        name, system, addr = spec.split(",")
        host, port = addr.rsplit(":", 1)
        nodes.append(Node(name, system, host, int(port), ctx))
    asyncio.get_running_loop().create_task(flusher(args.events))
    for n in nodes:
        asyncio.get_running_loop().create_task(n.lease_loop())
        asyncio.get_running_loop().create_task(n.watch_loop())
        if args.admin_poll and n.system == "apilb":
            asyncio.get_running_loop().create_task(admin_poll(n))
    await asyncio.Future()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--ca", required=True)
    p.add_argument("--events", required=True)
    p.add_argument("--node", action="append", default=[], help="NAME,SYSTEM,HOST:PORT")
    p.add_argument("--nodes-file", help="one NAME,SYSTEM,HOST:PORT a line")
    p.add_argument("--admin-poll", action="store_true",
                   help="poll each apilb's GET /upstreams (port 9444) every second")
    a = p.parse_args()
    if a.nodes_file:
        with open(a.nodes_file) as f:
            a.node += [ln.strip() for ln in f if ln.strip()]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        asyncio.run(main(a))
    except KeyboardInterrupt:
        sys.exit(0)
