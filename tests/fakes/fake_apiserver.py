# SPDX-License-Identifier: Apache-2.0
"""A fake kube-apiserver for apilb's tests (Python standard library only).

One process serves several TLS listeners; each is one "apiserver instance"
of a single simulated cluster. What it reproduces (see
../../../shared/reference/k8s-watch-spec.md sections 1, 2, 3, 5 and 6):

- the default/kubernetes Endpoints and EndpointSlice objects exactly as the
  apiserver's lease reconciler writes them, with a global resourceVersion;
- LIST (items without kind/apiVersion) and WATCH (chunked, newline-terminated
  compact JSON events split at random byte boundaries, bookmarks, clean end at
  timeoutSeconds, ERROR 410 Expired when the RV left the history window,
  504 "Too large resource version");
- client-certificate auth (against a client CA) and bearer tokens re-read
  from a file on every request (so tests rotate them); anonymous access only
  to /readyz /livez /healthz /version, or (--anonymous-auth false, like
  kube-apiserver's flag) to none: anonymous health endpoints answer 401;
  403 per resource on demand, or per user and verb (/access), answered
  alike by LIST/WATCH and by SelfSubjectAccessReview (authorization.k8s.io/v1,
  201 with status.allowed);
- instances joining only when ready, leaving at once on graceful stop, and
  staying listed after a crash until their lease expires;
- faults: stall, reset mid-event, a truncated last chunk, garbage, duplicate
  events, resourceVersion as a number, Connection: close, 429/503 with
  Retry-After, empty list, per-instance unready / refusing / black-holed,
  answers of nearly 8 MiB that make huge JSON trees (fault "hostile");
- streaming lists (sendInitialEvents=true: ADDED for the current state, then
  a BOOKMARK annotated k8s.io/initial-events-end; 422 with --no-watch-list or
  without allowWatchBookmarks and resourceVersionMatch=NotOlderThan);
- selector transitions (the slice losing its label is DELETED, regaining
  it ADDED); /readyz /livez /healthz with ?verbose and ?exclude= like the
  apiserver; graceful shutdown (readyz fails, address leaves the list, then
  after a delay the listener closes, or first answers 429 Retry-After: 5 with
  Connection: close for a while, like --shutdown-send-retry-after);
  serving-certificate rotation; one certificate shared by every instance
  (--cert, RKE1's shape) or each instance its own (--instance-cert, as kubeadm
  and k3s issue them: its own address and the kubernetes names only).

EndpointSlices: the reconciler writes the members of the first member's
family into the slice "kubernetes" and, when there are members of the other
family too, those into "kubernetes-v6" (or "-v4"), with endpoints[].zone (and
hints.forZones) from /members "zones" ("hints"); POST /slices/NAME
{"addressType", "endpoints", "ports"?} creates or replaces any labelled slice
(ADDED/MODIFIED), POST /slices/NAME/delete deletes one (DELETED). Every write
is validated like the API's: an address the API refuses (not of the slice's
addressType; unspecified, loopback 127.0.0.0/8 and ::1, link-local
169.254.0.0/16 and fe80::/10, link-local multicast 224.0.0.0/24 and ff02::),
a zone or hint that is not a label value, an endpoint without addresses, get
422 Invalid with the API's Status body and are never served. An instance on
such an address (127.0.0.1) is never listed.

Control: a plain-HTTP JSON API on 127.0.0.1: POST /members {"ips": [...],
"zones": {ip: zone}, "hints": bool}, /slices/NAME, /slices/NAME/delete,
/compact, /nodes {"name", "labels"} (a Node object, served by GET
/api/v1/nodes/NAME to a caller allowed `get nodes`), /forbid {"resources": [...]},
/fault {"kind": K, "on": bool},
/status {"code", "retry_after", "count", "path" (a prefix; default any)}, /revoke {"serial"}, /chunk {"max"},
/access {"user": TOKEN or client-certificate CN, "deny": ["list endpoints", ...]},
/label {"on"}, /serving-cert {"cert", "key", "ip"}, /etcd {"ok": bool} (the
etcd checks of /readyz /livez /healthz fail while false), /instance/IP/ACTION with
ACTION stop {"delay", "retry_after"} | crash | start | ready | unready | blackhole; GET /
returns the state and recent requests. The chosen ports are written to
--ready-file as JSON.
"""

import argparse
import http.server
import ipaddress
import json
import os
import random
import re
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
import urllib.parse
import uuid

LOCK = threading.Condition()


class Cluster:
    """The simulated cluster state shared by every instance."""

    def __init__(self, args):
        self.rv = 100
        self.members = []          # IPs listed in the objects, in order
        self.port = 6443
        self.history = []          # (rv, resource, type, object)
        self.history_window = args.history
        self.bookmark_interval = args.bookmark_interval
        self.lease_ttl = args.lease_ttl
        self.forbidden = set()     # resources answered with 403
        self.etcd_ok = True        # the etcd checks of /readyz /livez /healthz
        self.denied = {}           # user -> {"verb resource"} answered with 403
        self.faults = {}           # kind -> parameters
        self.status_faults = []    # [code, retry_after, path prefix] for the next requests
        self.rng = random.Random(args.seed)
        self.chunk_max = args.chunk_max
        self.requests = []         # (instance, path, identity) of recent requests
        self.cut = 0               # bumped to end every running watch
        self.labeled = True        # the slice carries kubernetes.io/service-name
        self.ep_uid = str(uuid.uuid4())
        self.slice_uid = str(uuid.uuid4())
        self.objects = {}
        self.slices = {}           # name -> EndpointSlice: the reconciler's and /slices ones
        self.zones = {}            # member IP -> zone the reconciler writes
        self.zone_hints = False    # the reconciler writes hints.forZones = [its zone]
        self.nodes = {}            # node name -> Node object (/nodes)
        with LOCK:
            self._rebuild(initial=True)

    # -- objects --------------------------------------------------------

    def _endpoints(self, rv):
        obj = {"kind": "Endpoints", "apiVersion": "v1",
               "metadata": {"name": "kubernetes", "namespace": "default", "uid": self.ep_uid,
                            "resourceVersion": str(rv),
                            "creationTimestamp": "2026-01-01T00:00:00Z",
                            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}}}
        if self.members:
            obj["subsets"] = [{"addresses": [{"ip": ip} for ip in sorted(self.members)],
                               "ports": [{"name": "https", "port": self.port,
                                          "protocol": "TCP"}]}]
        return obj

    def _slice(self, rv, name="kubernetes", ips=None):
        """The reconciler's slice: the members of the primary family (that
        of the first member) in "kubernetes", the other family's, when every
        apiserver has one, in "kubernetes-v6" or "kubernetes-v4"."""
        ips = self.members if ips is None else ips
        v6 = bool(ips) and all(":" in ip for ip in ips)
        labels = {"kubernetes.io/service-name": "kubernetes"} if self.labeled or \
            name != "kubernetes" else {"test/unlabeled": "true"}
        eps = []
        for ip in sorted(ips):
            e = {"addresses": [ip], "conditions": {"ready": True}}
            if ip in self.zones:
                e["zone"] = self.zones[ip]
                if self.zone_hints:
                    e["hints"] = {"forZones": [{"name": self.zones[ip]}]}
            eps.append(e)
        return {"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
                "metadata": {"name": name, "namespace": "default",
                             "uid": self.slice_uid if name == "kubernetes" else
                             str(uuid.uuid5(uuid.NAMESPACE_DNS, name)),
                             "resourceVersion": str(rv), "generation": rv,
                             "creationTimestamp": "2026-01-01T00:00:00Z", "labels": labels},
                "addressType": "IPv6" if v6 else "IPv4",
                "endpoints": eps,
                "ports": [{"name": "https", "protocol": "TCP", "port": self.port}]}

    def _family_split(self):
        """(primary, secondary name, secondary IPs) of the members."""
        if not self.members:
            return self.members, None, []
        v6 = ":" in self.members[0]
        primary = [ip for ip in self.members if (":" in ip) == v6]
        other = [ip for ip in self.members if (":" in ip) != v6]
        return primary, "kubernetes-v4" if v6 else "kubernetes-v6", other

    def _put_slice(self, sl, initial=False):
        """Stores a slice and records its event (caller holds LOCK)."""
        name = sl["metadata"]["name"]
        typ = "MODIFIED" if name in self.slices else "ADDED"
        self.slices[name] = sl
        listed = name != "kubernetes" or self.labeled
        if not initial and listed:  # a watch by label does not see an unlabeled slice
            self.history.append((int(sl["metadata"]["resourceVersion"]), "endpointslices", typ,
                                 sl))

    def _drop_slice(self, name):
        """Deletes a slice: DELETED with its last content at a new RV (LOCK held)."""
        old = self.slices.pop(name)
        self.rv += 1
        gone = json.loads(json.dumps(old))
        gone["metadata"]["resourceVersion"] = str(self.rv)
        if name != "kubernetes" or self.labeled:
            self.history.append((self.rv, "endpointslices", "DELETED", gone))

    def _rebuild(self, initial=False):
        """Writes the objects with new resourceVersions (caller holds LOCK)."""
        self.rv += 1
        ep = self._endpoints(self.rv)
        primary, second, other = self._family_split()
        self.rv += 1
        self.objects = {"endpoints": ep}
        self._put_slice(self._slice(self.rv, ips=primary), initial)
        if other:
            self.rv += 1
            self._put_slice(self._slice(self.rv, second, other), initial)
        for stale in ("kubernetes-v4", "kubernetes-v6"):
            if stale in self.slices and (stale != second or not other):
                self._drop_slice(stale)
        if not initial:
            self.history.append((int(ep["metadata"]["resourceVersion"]), "endpoints",
                                 "MODIFIED", ep))
            self.history.sort(key=lambda h: h[0])
            self.history = self.history[-self.history_window:]
        LOCK.notify_all()

    def listed_slices(self):
        """The slices a label-selector LIST or WATCH sees, by name (LOCK held)."""
        return [self.slices[n] for n in sorted(self.slices)
                if n != "kubernetes" or self.labeled]

    def put_slice(self, name, body):
        """POST /slices/NAME: creates or replaces one slice as a client of the
        API would, validated like the API. Returns None or a 422 Status."""
        st = validate_slice(name, body)
        if st is not None:
            return st
        with LOCK:
            self.rv += 1
            sl = {"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
                  "metadata": {"name": name, "namespace": "default",
                               "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)),
                               "resourceVersion": str(self.rv), "generation": self.rv,
                               "creationTimestamp": "2026-01-01T00:00:00Z",
                               "labels": {"kubernetes.io/service-name": "kubernetes"}},
                  "addressType": body["addressType"],
                  "endpoints": body.get("endpoints") or [],
                  "ports": body.get("ports", [{"name": "https", "protocol": "TCP",
                                               "port": self.port}])}
            self._put_slice(sl)
            self.history = self.history[-self.history_window:]
            LOCK.notify_all()
        return None

    def delete_slice(self, name):
        with LOCK:
            if name not in self.slices:
                return False
            self._drop_slice(name)
            self.history = self.history[-self.history_window:]
            LOCK.notify_all()
        return True

    def set_labeled(self, on):
        """Selector transitions: a slice that stops matching the watch's label
        selector is sent as DELETED (its last matching content at the new
        resourceVersion); one that starts matching as ADDED."""
        with LOCK:
            if on == self.labeled:
                return
            old = self.slices["kubernetes"]
            self.labeled = on
            self.rv += 1
            sl = self._slice(self.rv, ips=self._family_split()[0])
            self.slices["kubernetes"] = sl
            if on:
                self.history.append((self.rv, "endpointslices", "ADDED", sl))
            else:
                gone = json.loads(json.dumps(old))
                gone["metadata"]["resourceVersion"] = str(self.rv)
                self.history.append((self.rv, "endpointslices", "DELETED", gone))
            self.history = self.history[-self.history_window:]
            LOCK.notify_all()

    def set_members(self, ips, zones=None, hints=None):
        """The reconciler's write. Returns None, or the API's 422 Status for
        an address the API refuses (nothing is written then)."""
        st = validate_members(ips)
        if st is not None:
            return st
        with LOCK:
            changed = zones is not None and zones != self.zones or \
                hints is not None and hints != self.zone_hints
            if zones is not None:
                self.zones = dict(zones)
            if hints is not None:
                self.zone_hints = bool(hints)
            if list(ips) != self.members or not self.history or changed:
                self.members = list(ips)
                self._rebuild()
        return None

    def oldest_rv(self):
        return self.history[0][0] - 1 if self.history else self.rv

    def compact(self):
        """Forgets the history: every older watch RV is now too old."""
        with LOCK:
            self.history = []
            self.rv += 1
            LOCK.notify_all()


class Instance:
    """One apiserver: a TLS listener on ip:port."""

    def __init__(self, cluster, ip, port, ctx):
        self.cluster = cluster
        self.ip = ip
        self.port = port
        self.ctx = ctx
        self.ready = True
        self.server = None
        self.conns = set()
        self.crashed_at = None
        self.blackhole = None
        self.rejecting = False  # --shutdown-send-retry-after phase: 429 for new requests

    def start(self, join=True):
        self.server = Server((self.ip, self.port), Handler, self)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        self.crashed_at = None
        if join:
            self.join()

    def join(self):
        # Like the reconciler: an apiserver lists itself once its /readyz is
        # green, and the API refuses the write when its address is one that
        # endpoints may not carry (a 127.0.0.1 listener is never listed).
        if self.ready:
            with LOCK:
                members = list(self.cluster.members)
            if self.ip not in members:
                st = self.cluster.set_members(members + [self.ip])
                if st is not None:
                    print("fake_apiserver: %s not listed: %s" % (self.ip, st["message"]),
                          file=sys.stderr)

    def leave(self):
        with LOCK:
            members = [m for m in self.cluster.members if m != self.ip]
        self.cluster.set_members(members)

    def close_listener(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def cut_connections(self):
        for c in list(self.conns):
            try:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                # shutdown() wakes a handler thread blocked reading the socket;
                # close() alone would leave the connection open until it returns.
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass

    def stop(self, delay=0.1, retry_after=0.0):
        """Graceful, like kube-apiserver on SIGTERM: /readyz fails at once and
        the address leaves the list; requests are still served for the
        shutdown delay; then the listener closes and connections are cut.
        With retry_after (--shutdown-send-retry-after), the listener stays
        open that many seconds more after the delay, answering every new
        request but the health paths with 429, Retry-After: 5 and
        Connection: close, while open watches go on; then it closes."""
        self.ready = False
        self.leave()

        def finish():
            time.sleep(delay)
            if retry_after > 0:
                self.rejecting = True
                time.sleep(retry_after)
            self.close_listener()
            self.cut_connections()
            self.rejecting = False

        if delay + retry_after > 0.5:
            threading.Thread(target=finish, daemon=True).start()
        else:
            finish()

    def crash(self):
        """Gone at once; stays listed until its lease expires."""
        self.close_listener()
        self.cut_connections()
        self.crashed_at = time.time()

        def expire():
            time.sleep(self.cluster.lease_ttl)
            if self.crashed_at is not None:
                self.leave()

        threading.Thread(target=expire, daemon=True).start()

    def make_blackhole(self):
        """Stops accepting and fills the accept queue: SYNs are dropped."""
        self.close_listener()
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.ip, self.port))
        s.listen(0)
        fillers = []
        for _ in range(8):
            f = socket.socket()
            f.setblocking(False)
            try:
                f.connect((self.ip, self.port))
            except BlockingIOError:
                pass
            fillers.append(f)
        self.blackhole = (s, fillers)
        self.cut_connections()


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr, handler, instance):
        self.instance = instance
        if ":" in addr[0]:
            self.address_family = socket.AF_INET6
        super().__init__(addr, handler)

    def finish_request(self, request, client_address):
        # The TLS handshake happens on the handler's thread, not the acceptor's.
        inst = self.instance
        inst.conns.add(request)
        try:
            tls = inst.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            inst.conns.discard(request)
            return
        # wrap_socket() detached request: from now on tls owns the descriptor.
        inst.conns.discard(request)
        inst.conns.add(tls)
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            inst.conns.discard(tls)


def ip_errors(value, family, path):
    """What the API's validation says of an endpoint address (apimachinery's
    IsValidIPv4Address/IsValidIPv6Address for a slice's addressType, then
    core validation's ValidateNonSpecialIP): a list of Status causes."""
    def cause(msg):
        return {"reason": "FieldValueInvalid", "message": 'Invalid value: "%s": %s'
                % (value, msg), "field": path}
    try:
        ip = ipaddress.ip_address(value) if isinstance(value, str) else None
    except ValueError:
        ip = None
    if family == "IPv4" and (ip is None or ip.version != 4):
        return [cause("must be a valid IPv4 address")]
    if family == "IPv6" and (ip is None or ip.version != 6):
        return [cause("must be a valid IPv6 address")]
    if ip is None:
        return [cause("must be a valid IP address")]
    errs = []
    if ip.is_unspecified:
        errs.append(cause("may not be unspecified (%s)" % value))
    if ip.is_loopback:
        errs.append(cause("may not be in the loopback range (127.0.0.0/8, ::1/128)"))
    if ip.is_link_local:
        errs.append(cause("may not be in the link-local range (169.254.0.0/16, fe80::/10)"))
    packed = ip.packed
    if (ip.version == 4 and packed[:3] == b"\xe0\x00\x00") or \
            (ip.version == 6 and packed[0] == 0xff and packed[1] & 0x0f == 0x02):
        errs.append(cause("may not be in the link-local multicast range "
                          "(224.0.0.0/24, ff02::/10)"))
    return errs


LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric "
                   "characters, '-', '_' or '.', and must start and end with an alphanumeric "
                   "character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
                   "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")


def label_value_errors(value, path):
    if not isinstance(value, str):
        return [{"reason": "FieldValueInvalid", "message": "Invalid value: %s: must be a string"
                 % json.dumps(value), "field": path}]
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not re.fullmatch(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?", value):
        errs.append(LABEL_VALUE_MSG)
    return [{"reason": "FieldValueInvalid", "message": 'Invalid value: "%s": %s' % (value, m),
             "field": path} for m in errs]


def invalid(kind, group, name, causes):
    """422 Invalid as the API builds it (apimachinery errors.NewInvalid)."""
    msgs = ["%s: %s" % (c["field"], c["message"]) for c in causes]
    qualified = "%s.%s" % (kind, group) if group else kind
    message = '%s "%s" is invalid: %s' % (qualified, name, msgs[0] if len(msgs) == 1
                                          else "[" + ", ".join(msgs) + "]")
    details = {"name": name, "kind": kind, "causes": causes}
    if group:
        details["group"] = group
    return status(422, "Invalid", message, details)


def validate_members(ips):
    """The reconciler's Endpoints write (one subset, addresses sorted), as the
    API validates it. None when valid."""
    if not isinstance(ips, list):
        return status(400, "BadRequest", "ips is not a list")
    causes = []
    for i, ip in enumerate(sorted(ips, key=str)):
        causes += ip_errors(ip, None, "subsets[0].addresses[%d].ip" % i)
    return invalid("Endpoints", "", "kubernetes", causes) if causes else None


def validate_slice(name, body):
    """An EndpointSlice write, as the API's validation sees it (the parts a
    client of apilb can get wrong). None when valid."""
    causes = []
    if len(name) > 253 or not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
                                           r"(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", name):
        causes.append({"reason": "FieldValueInvalid", "message": 'Invalid value: "%s": a '
                       "lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                       "characters, '-' or '.', and must start and end with an alphanumeric "
                       "character" % name, "field": "metadata.name"})
    at = body.get("addressType") if isinstance(body, dict) else None
    if at not in ("IPv4", "IPv6", "FQDN"):
        causes.append({"reason": "FieldValueNotSupported", "message": 'Unsupported value: "%s": '
                       'supported values: "FQDN", "IPv4", "IPv6"' % at, "field": "addressType"})
    eps = body.get("endpoints") if isinstance(body, dict) else None
    if eps is not None and not isinstance(eps, list):
        causes.append({"reason": "FieldValueInvalid", "message": "Invalid value: must be a list",
                       "field": "endpoints"})
        eps = []
    if eps and len(eps) > 1000:
        causes.append({"reason": "FieldValueTooMany", "message": "Too many: %d: must have at "
                       "most 1000 items" % len(eps), "field": "endpoints"})
    for i, ep in enumerate(eps or []):
        addrs = ep.get("addresses") if isinstance(ep, dict) else None
        if not isinstance(addrs, list) or not addrs:
            causes.append({"reason": "FieldValueRequired", "message": "Required value: must "
                           "contain at least 1 address", "field": "endpoints[%d].addresses" % i})
            continue
        if len(addrs) > 100:
            causes.append({"reason": "FieldValueTooMany", "message": "Too many: %d: must have at "
                           "most 100 items" % len(addrs), "field": "endpoints[%d].addresses" % i})
        if at in ("IPv4", "IPv6"):
            for j, a in enumerate(addrs):
                causes += ip_errors(a, at, "endpoints[%d].addresses[%d]" % (i, j))
        if ep.get("zone") is not None:
            causes += label_value_errors(ep["zone"], "endpoints[%d].zone" % i)
        zones = (ep.get("hints") or {}).get("forZones") or []
        if len(zones) > 8:
            causes.append({"reason": "FieldValueTooMany", "message": "Too many: %d: must have at "
                           "most 8 items" % len(zones),
                           "field": "endpoints[%d].hints.forZones" % i})
        for k, z in enumerate(zones):
            causes += label_value_errors(z.get("name") if isinstance(z, dict) else z,
                                         "endpoints[%d].hints.forZones[%d].name" % (i, k))
    return invalid("EndpointSlice", "discovery.k8s.io", name, causes) if causes else None


def status(code, reason, message, details=None):
    s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "message": message, "reason": reason, "code": code}
    if details:
        s["details"] = details
    return s


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    @property
    def inst(self):
        return self.server.instance

    @property
    def cluster(self):
        return self.server.instance.cluster

    def send_json(self, code, obj, headers=()):
        body = json.dumps(obj, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def identity(self):
        """The authenticated user, or None."""
        cert = self.connection.getpeercert()
        if cert:
            cn = dict(x[0] for x in cert.get("subject", ()))
            serial = cert.get("serialNumber", "")
            if serial in ARGS_REVOKED:
                return None
            return "cert:%s:%s" % (cn.get("commonName", ""), serial)
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and ARGS.token_file:
            try:
                with open(ARGS.token_file) as f:
                    want = f.read().strip()
            except OSError:
                return None
            if want and auth[7:].strip() == want:
                return "token:%s" % want[-6:]
        return None

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        path = url.path
        if path in ("/readyz", "/livez", "/healthz"):
            name = path[1:]
            if not ARGS.anonymous_auth:
                # --anonymous-auth=false: authentication runs before the
                # health handlers, so an anonymous caller learns nothing.
                who = self.identity()
                with LOCK:
                    self.cluster.requests.append((self.inst.ip, self.path, who))
                if who is None:
                    self.send_json(401, status(401, "Unauthorized", "Unauthorized"))
                    return
            excluded = set(urllib.parse.parse_qs(url.query).get("exclude", []))
            etcd = self.cluster.etcd_ok
            checks = [("ping", True), ("log", True), ("etcd", etcd)]
            if name == "readyz":
                checks += [("etcd-readiness", etcd), ("informer-sync", True),
                           ("shutdown", self.inst.ready)]
            checks = [(c, passed) for c, passed in checks if c not in excluded]
            ok = all(passed for _, passed in checks)
            lines = ["[+]%s ok" % c if passed else "[-]%s failed: reason withheld" % c
                     for c, passed in checks]
            lines += ["[+]%s excluded: ok" % c for c in sorted(excluded)]
            if ok and "verbose" not in urllib.parse.parse_qs(url.query, keep_blank_values=True):
                body = b"ok"
            else:
                body = ("\n".join(lines) + "\n%s check %s\n"
                        % (name, "passed" if ok else "failed")).encode()
            self.send_response(200 if ok else 500)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.inst.rejecting:  # apiserver pkg/server/filters/with_retry_after.go
            self.send_json(429, status(429, "TooManyRequests", "The apiserver is shutting down, "
                                       "please try again later."),
                           [("Retry-After", "5"), ("Connection", "close")])
            self.close_connection = True
            with LOCK:
                self.cluster.requests.append((self.inst.ip, self.path, "rejected"))
            return
        if path == "/version":
            self.send_json(200, {"major": "1", "minor": "33", "gitVersion": "v1.33.0-fake",
                                 "servedBy": self.inst.ip})
            return
        who = self.identity()
        with LOCK:
            self.cluster.requests.append((self.inst.ip, self.path, who))
            self.cluster.requests = self.cluster.requests[-500:]
            sf = None
            for i, f in enumerate(self.cluster.status_faults):
                if path.startswith(f[2]):
                    sf = self.cluster.status_faults.pop(i)[:2]
                    break
        if who is None:
            self.send_json(401, status(401, "Unauthorized", "Unauthorized"))
            return
        if sf is not None:
            code, retry = sf
            self.send_json(code, status(code, "TooManyRequests" if code == 429 else
                                        "ServiceUnavailable", "fake fault"),
                           [("Retry-After", str(retry))])
            return
        if path == "/api":
            self.send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                 "serverAddressByClientCIDRs": []})
            return
        if path == "/apis":
            self.send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
            return
        if path == "/api/v1/namespaces/default/endpoints/kubernetes":
            if "endpoints" in self.cluster.forbidden:
                return self.forbid("endpoints", "get")
            with LOCK:
                obj = self.cluster.objects["endpoints"]
            self.send_json(200, obj, [("Warning", '299 - "v1 Endpoints is deprecated in '
                                                  'v1.33+; use discovery.k8s.io/v1 '
                                                  'EndpointSlice"')])
            return
        if path.startswith("/api/v1/nodes/") and "/" not in path[len("/api/v1/nodes/"):]:
            return self.node(path[len("/api/v1/nodes/"):])
        if path == "/api/v1/namespaces/default/endpoints":
            return self.collection("endpoints", q)
        if path == "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices":
            return self.collection("endpointslices", q)
        self.send_json(404, status(404, "NotFound", "the server could not find the requested "
                                                    "resource"))

    def user(self):
        """The user RBAC sees: the client certificate's CN, or the bearer token."""
        cert = self.connection.getpeercert()
        if cert:
            return dict(x[0] for x in cert.get("subject", ())).get("commonName", "")
        auth = self.headers.get("Authorization", "")
        return auth[7:].strip() if auth.startswith("Bearer ") else ""

    def authorized(self, verb, group, resource):
        """What the fake's RBAC allows: every verb on its two resources in
        default, less the resources forbidden to all and what /access denied
        to this user."""
        if (group, resource) not in (("discovery.k8s.io", "endpointslices"), ("", "endpoints"),
                                     ("", "nodes")):
            return False
        if resource == "nodes" and verb != "get":
            return False
        with LOCK:
            return resource not in self.cluster.forbidden and \
                "%s %s" % (verb, resource) not in self.cluster.denied.get(self.user(), ())

    def do_POST(self):
        """SelfSubjectAccessReview, the only resource the fake creates."""
        url = urllib.parse.urlsplit(self.path)
        n = int(self.headers.get("Content-Length", "0") or "0")
        if n > 1 << 20:
            self.close_connection = True
            return self.send_json(413, status(413, "RequestEntityTooLarge", "too large"))
        raw = self.rfile.read(n)
        who = self.identity()
        with LOCK:
            self.cluster.requests.append((self.inst.ip, "POST " + self.path, who))
        if who is None:
            return self.send_json(401, status(401, "Unauthorized", "Unauthorized"))
        if url.path != "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews":
            return self.send_json(405, status(405, "MethodNotAllowed",
                                              "the server does not allow this method on the "
                                              "requested resource"))
        try:
            review = json.loads(raw)
            attrs = review["spec"]["resourceAttributes"]
            ok = review.get("kind") == "SelfSubjectAccessReview" and \
                review.get("apiVersion") == "authorization.k8s.io/v1" and isinstance(attrs, dict)
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            return self.send_json(400, status(400, "BadRequest", "the body is not a "
                                              "SelfSubjectAccessReview"))
        # nodes are cluster-scoped: no namespace in the review
        allowed = attrs.get("namespace", "") == ("" if attrs.get("resource") == "nodes" else
                                                 "default") and attrs.get("verb") in (
            "get", "list", "watch") and self.authorized(attrs.get("verb"), attrs.get("group", ""),
                                                        attrs.get("resource"))
        review["metadata"] = {"creationTimestamp": None}
        review["status"] = {"allowed": allowed}
        if allowed:
            review["status"]["reason"] = 'RBAC: allowed by RoleBinding "apilb/default" of Role ' \
                                         '"apilb"'
        self.send_json(201, review)

    def forbid(self, resource, verb):
        group = "discovery.k8s.io" if resource == "endpointslices" else ""
        self.send_json(403, status(403, "Forbidden",
                                   '%s is forbidden: User "test" cannot %s resource "%s" in API '
                                   'group "%s" in the namespace "default"'
                                   % (resource, verb, resource, group),
                                   {"kind": resource}))

    def node(self, name):
        """GET /api/v1/nodes/NAME: the Node object /nodes made, as the API
        returns it; 403 without `get nodes`, 404 for an unknown node."""
        if not self.authorized("get", "", "nodes"):
            return self.send_json(403, status(403, "Forbidden",
                                              'nodes "%s" is forbidden: User "test" cannot get '
                                              'resource "nodes" in API group "" at the cluster '
                                              'scope' % name,
                                              {"name": name, "kind": "nodes"}))
        with LOCK:
            obj = self.cluster.nodes.get(name)
        if obj is None:
            return self.send_json(404, status(404, "NotFound", 'nodes "%s" not found' % name,
                                              {"name": name, "kind": "nodes"}))
        self.send_json(200, obj)

    def collection(self, resource, q):
        watch = q.get("watch") in ("1", "true")
        group = "discovery.k8s.io" if resource == "endpointslices" else ""
        if not self.authorized("watch" if watch else "list", group, resource):
            return self.forbid(resource, "watch" if watch else "list")
        if resource == "endpoints" and q.get("fieldSelector", "metadata.name=kubernetes") != \
                "metadata.name=kubernetes":
            return self.send_json(400, status(400, "BadRequest", "unsupported field selector"))
        if resource == "endpointslices" and q.get("labelSelector") != \
                "kubernetes.io/service-name=kubernetes":
            return self.send_json(400, status(400, "BadRequest", "unsupported label selector"))
        rv = q.get("resourceVersion", "")
        with LOCK:
            current = self.cluster.rv
            hostile = self.cluster.faults.get("hostile")
        if hostile is not None:
            return self.hostile(resource, watch, hostile.get("shape", "wide"))
        if rv not in ("", "0"):
            try:
                rvn = int(rv)
            except ValueError:
                return self.send_json(400, status(400, "BadRequest", "invalid resourceVersion"))
            if rvn > current:
                return self.send_json(504, status(504, "Timeout", "Timeout: Too large resource "
                                      "version: %d, current: %d" % (rvn, current),
                                      {"causes": [{"reason": "ResourceVersionTooLarge",
                                                   "message": "Too large resource version"}],
                                       "retryAfterSeconds": 1}))
        if not watch:
            with LOCK:
                objs = [self.cluster.objects["endpoints"]] if resource == "endpoints" \
                    else self.cluster.listed_slices()
                items = []
                for obj in objs:
                    item = dict(obj)
                    item.pop("kind")  # list items carry no kind/apiVersion
                    item.pop("apiVersion")
                    items.append(item)
                kind = "EndpointsList" if resource == "endpoints" else "EndpointSliceList"
                api = "v1" if resource == "endpoints" else "discovery.k8s.io/v1"
                self.send_json(200, {"kind": kind, "apiVersion": api,
                                     "metadata": {"resourceVersion": str(self.cluster.rv)},
                                     "items": items})
            return
        self.watch(resource, rv, q)

    def hostile(self, resource, watch, shape):
        """A compromised apiserver: a LIST answer, or one watch event, of
        nearly 8 MiB (the most a client reads of either) whose JSON tree is
        far larger than its text: "wide" is [[],[],...] (3 bytes of text,
        100+ bytes of tree each), "deep" brackets nested a million deep,
        "many" one slice of ~100k endpoints (the API allows 1000)."""
        size = (8 << 20) - 4096
        with LOCK:
            rv = str(self.cluster.rv)
        if shape == "deep":
            inner = b"[" * (size // 2 - 100) + b"]" * (size // 2 - 100)
        elif shape == "many":
            one = [b'{"addresses":["10.%d.%d.%d"],"conditions":{"ready":true}}'
                   % (20 + i // 65536, i // 256 % 256, i % 256) for i in range(size // 64)]
            inner = b"[" + b",".join(one) + b"]"
        else:
            inner = b"[" + b"[]," * (size // 3 - 100) + b"[]]"
        key = b"subsets" if resource == "endpoints" else b"endpoints"
        obj = b'{"metadata":{"name":"kubernetes","namespace":"default","resourceVersion":"%s"},' \
              b'"addressType":"IPv4","%s":%s}' % (rv.encode(), key, inner)
        if watch is None:  # the event for a running watch
            return b'{"type":"MODIFIED","object":%s}\n' % obj
        if not watch:
            body = b'{"kind":"List","apiVersion":"v1","metadata":{"resourceVersion":"%s"},' \
                   b'"items":[%s]}' % (rv.encode(), obj)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            self.send_hostile(b'{"type":"MODIFIED","object":%s}\n' % obj)
        except (OSError, ssl.SSLError):
            pass

    def send_hostile(self, event):
        """Sends event in 64 KiB chunks, then ends the watch."""
        for i in range(0, len(event), 1 << 16):
            self.chunk(event[i:i + (1 << 16)])
        self.chunk(b"")
        self.close_connection = True

    # -- watch ----------------------------------------------------------

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def send_events(self, payload):
        """Writes bytes split at random positions into chunks."""
        rng = self.cluster.rng
        i = 0
        while i < len(payload):
            n = rng.randint(1, self.cluster.chunk_max)
            self.chunk(payload[i:i + n])
            i += n

    def watch(self, resource, rv, q):
        timeout = float(q.get("timeoutSeconds", "1800"))
        bookmarks = q.get("allowWatchBookmarks") in ("1", "true")
        initial = q.get("sendInitialEvents") in ("1", "true")  # a streaming list
        if initial and ARGS.no_watch_list:
            return self.send_json(422, status(
                422, "Invalid", 'Invalid value: "sendInitialEvents": sendInitialEvents is '
                'forbidden for watch unless the WatchList feature gate is enabled',
                {"causes": [{"reason": "FieldValueForbidden", "field": "sendInitialEvents"}]}))
        if initial and (not bookmarks or q.get("resourceVersionMatch") != "NotOlderThan"):
            return self.send_json(422, status(
                422, "Invalid", "sendInitialEvents requires allowWatchBookmarks=true and "
                "resourceVersionMatch=NotOlderThan",
                {"causes": [{"reason": "FieldValueInvalid", "field": "sendInitialEvents"}]}))
        with LOCK:
            conn_close = "conn-close" in self.cluster.faults
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        if conn_close:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()
        with LOCK:
            start_rv = int(rv) if rv not in ("", "0") else None
            if start_rv is not None and start_rv < self.cluster.oldest_rv():
                ev = {"type": "ERROR", "object": status(
                    410, ARGS.expired_reason,
                    "too old resource version: %d (%d)" % (start_rv, self.cluster.oldest_rv()))}
                self.send_events(json.dumps(ev, separators=(",", ":")).encode() + b"\n")
                self.chunk(b"")
                self.close_connection = True
                return
            if initial:
                start_rv = None  # NotOlderThan: the current state, then changes
            if start_rv is None:  # synthetic ADDED for the current state
                pending = [("ADDED", o) for o in (
                    [self.cluster.objects["endpoints"]] if resource == "endpoints"
                    else self.cluster.listed_slices())]
                sent_rv = self.cluster.rv
            else:
                pending = []
                sent_rv = start_rv
        deadline = time.time() + timeout
        next_bookmark = time.time() + self.cluster.bookmark_interval
        cut = self.cluster.cut
        try:
            while True:
                if self.cluster.cut != cut:
                    self.chunk(b"")
                    self.close_connection = True
                    return
                with LOCK:
                    for erv, res, typ, obj in self.cluster.history:
                        if erv > sent_rv and res == resource:
                            pending.append((typ, obj))
                    if self.cluster.history:
                        sent_rv = max(sent_rv, self.cluster.history[-1][0])
                    faults = dict(self.cluster.faults)
                if "hostile" in faults:  # a running watch gets it too, then ends
                    return self.send_hostile(self.hostile(
                        resource, None, faults["hostile"].get("shape", "wide")))
                if "stall" in faults:
                    # Nothing at all: no events, no bookmarks, no end.
                    time.sleep(0.05)
                    continue
                if "garbage" in faults:
                    with LOCK:
                        self.cluster.faults.pop("garbage", None)
                    self.send_events(b'{"type":"MODIFIED","object":{]]]garbage\n')
                    self.close_connection = True
                    return
                if initial:
                    # The end of the initial events: a bookmark that says so.
                    kind = "Endpoints" if resource == "endpoints" else "EndpointSlice"
                    api = "v1" if resource == "endpoints" else "discovery.k8s.io/v1"
                    pending.append(("BOOKMARK", {"kind": kind, "apiVersion": api, "metadata": {
                        "resourceVersion": str(sent_rv),
                        "annotations": {"k8s.io/initial-events-end": "true"}}}))
                    initial = False
                if pending:
                    if "numeric-rv" in faults:  # a broken server: RV as a number
                        pending = [(t, dict(o, metadata=dict(
                            o["metadata"], resourceVersion=int(o["metadata"]["resourceVersion"]))))
                            for t, o in pending]
                    if "duplicate" in faults:
                        pending = [e for e in pending for _ in (0, 1)]
                    payload = b"".join(json.dumps({"type": t, "object": o},
                                                  separators=(",", ":")).encode() + b"\n"
                                       for t, o in pending)
                    pending = []
                    if "truncate" in faults:
                        # The last chunk stops inside an event; no final chunk.
                        self.send_events(payload[:len(payload) - 7])
                        self.connection.shutdown(socket.SHUT_RDWR)
                        self.close_connection = True
                        return
                    if "conn-close" in faults:
                        self.send_events(payload)
                        self.chunk(b"")
                        self.close_connection = True
                        return
                    if "reset" in faults:
                        with LOCK:
                            self.cluster.faults.pop("reset", None)
                        self.send_events(payload[:len(payload) // 2])
                        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                                   struct.pack("ii", 1, 0))
                        self.connection.close()
                        self.close_connection = True
                        return
                    self.send_events(payload)
                now = time.time()
                if now >= deadline:
                    self.chunk(b"")
                    return
                if bookmarks and now >= next_bookmark:
                    kind = "Endpoints" if resource == "endpoints" else "EndpointSlice"
                    api = "v1" if resource == "endpoints" else "discovery.k8s.io/v1"
                    with LOCK:
                        brv = self.cluster.rv
                    bm = {"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api,
                                                         "metadata": {"resourceVersion": str(brv)}}}
                    self.send_events(json.dumps(bm, separators=(",", ":")).encode() + b"\n")
                    sent_rv = max(sent_rv, brv)
                    next_bookmark = now + self.cluster.bookmark_interval
                with LOCK:
                    LOCK.wait(0.1)
        except (OSError, ssl.SSLError):
            return


# -- control API ------------------------------------------------------------


class Control(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        c = CLUSTER
        with LOCK:
            self.reply(200, {"rv": c.rv, "members": c.members, "slices": sorted(c.slices),
                             "faults": list(c.faults),
                             "forbidden": sorted(c.forbidden),
                             "instances": {ip: {"port": i.port, "ready": i.ready,
                                                "up": i.server is not None}
                                           for ip, i in INSTANCES.items()},
                             "status_faults": len(c.status_faults),
                             "requests": c.requests[-100:]})

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        try:
            body = json.loads(self.rfile.read(n) or b"{}")
        except ValueError:
            return self.reply(400, {"error": "body is not JSON"})
        parts = [p for p in self.path.split("/") if p]
        c = CLUSTER
        try:
            if parts == ["members"]:
                st = c.set_members(body["ips"], body.get("zones"), body.get("hints"))
                if st is not None:
                    return self.reply(st["code"], st)
            elif len(parts) == 2 and parts[0] == "slices":
                st = c.put_slice(parts[1], body)
                if st is not None:
                    return self.reply(st["code"], st)
            elif len(parts) == 3 and parts[0] == "slices" and parts[2] == "delete":
                if not c.delete_slice(parts[1]):
                    return self.reply(404, status(404, "NotFound", 'endpointslices.discovery.'
                                                  'k8s.io "%s" not found' % parts[1],
                                                  {"name": parts[1], "group": "discovery.k8s.io",
                                                   "kind": "endpointslices"}))
            elif parts == ["compact"]:
                c.compact()
            elif parts == ["etcd"]:
                with LOCK:
                    c.etcd_ok = bool(body.get("ok", True))
            elif parts == ["nodes"]:
                with LOCK:
                    c.nodes[body["name"]] = {
                        "kind": "Node", "apiVersion": "v1",
                        "metadata": {"name": body["name"], "uid": str(uuid.uuid4()),
                                     "resourceVersion": str(c.rv),
                                     "creationTimestamp": "2026-01-01T00:00:00Z",
                                     "labels": dict(body.get("labels", {}))},
                        "spec": {"podCIDR": "10.244.0.0/24"},
                        "status": {"conditions": [{"type": "Ready", "status": "True"}],
                                   "nodeInfo": {"kubeletVersion": "v1.33.0-fake"}}}
            elif parts == ["forbid"]:
                with LOCK:
                    c.forbidden = set(body.get("resources", []))
            elif parts == ["access"]:
                with LOCK:
                    c.denied[body["user"]] = set(body.get("deny", []))
            elif parts == ["fault"]:
                with LOCK:
                    if body.get("on", True):
                        c.faults[body["kind"]] = body
                    else:
                        c.faults.pop(body["kind"], None)
                    LOCK.notify_all()
            elif parts == ["status"]:
                with LOCK:
                    c.status_faults += [[body["code"], body.get("retry_after", 1),
                                         body.get("path", "")]] * body.get("count", 1)
            elif parts == ["serving-cert"]:
                # A rotated serving certificate (of the instance "ip", or of
                # every instance): new handshakes get it, and running
                # watches end (cleanly) so clients reconnect to it.
                for ip, inst in INSTANCES.items():
                    if body.get("ip") in (None, ip):
                        inst.ctx.load_cert_chain(body["cert"], body["key"])
                with LOCK:
                    c.cut += 1
                    LOCK.notify_all()
            elif parts == ["label"]:
                c.set_labeled(bool(body.get("on", True)))
            elif parts == ["revoke"]:
                ARGS_REVOKED.add(body["serial"])
            elif parts == ["chunk"]:
                with LOCK:
                    c.chunk_max = int(body["max"])
            elif len(parts) == 3 and parts[0] == "instance":
                inst = INSTANCES[parts[1]]
                action = parts[2]
                if action == "stop":
                    inst.stop(float(body.get("delay", 0.1)), float(body.get("retry_after", 0)))
                elif action == "crash":
                    inst.crash()
                elif action == "start":
                    inst.ready = True
                    if inst.blackhole:
                        s, fillers = inst.blackhole
                        for f in fillers:
                            f.close()
                        s.close()
                        inst.blackhole = None
                    inst.close_listener()
                    inst.start()
                elif action == "unready":
                    inst.ready = False
                elif action == "ready":
                    inst.ready = True
                    inst.join()
                elif action == "blackhole":
                    inst.make_blackhole()
                else:
                    return self.reply(400, {"error": "unknown action %s" % action})
            else:
                return self.reply(404, {"error": "unknown control path %s" % self.path})
        except KeyError as e:
            return self.reply(400, {"error": "missing %s" % e})
        self.reply(200, {"ok": True})


def serving_context(cert, key):
    """One instance's TLS server context: its own certificate, so an instance
    answers on its address with what that apiserver would present."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    if ARGS.client_ca:
        ctx.load_verify_locations(ARGS.client_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def main():
    global ARGS, CLUSTER
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--listen", action="append", required=True, help="IP:PORT of an instance")
    p.add_argument("--cert", help="serving certificate of the instances without their own")
    p.add_argument("--key")
    p.add_argument("--instance-cert", action="append", default=[], metavar="IP=CERT,KEY",
                   help="the serving certificate of the instance on IP (repeatable): each "
                        "apiserver its own, as kubeadm and k3s issue them")
    p.add_argument("--client-ca", help="CA that signs accepted client certificates")
    p.add_argument("--token-file", help="file holding the accepted bearer token (re-read)")
    p.add_argument("--ready-file", required=True)
    p.add_argument("--history", type=int, default=100, help="events kept for watches")
    p.add_argument("--bookmark-interval", type=float, default=60.0)
    p.add_argument("--lease-ttl", type=float, default=15.0)
    p.add_argument("--chunk-max", type=int, default=64, help="largest chunk, in bytes")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--expired-reason", default="Expired", choices=["Expired", "Gone"])
    p.add_argument("--no-watch-list", action="store_true",
                   help="answer sendInitialEvents with 422, like a server without WatchList")
    p.add_argument("--anonymous-auth", default="true", choices=["true", "false"],
                   help="false: anonymous /readyz /livez /healthz answer 401")
    p.add_argument("--members", help="comma-separated IPs to list at start "
                                     "(default: every instance)")
    ARGS = p.parse_args()
    ARGS.anonymous_auth = ARGS.anonymous_auth == "true"
    CLUSTER = Cluster(ARGS)
    own = {}
    for spec in ARGS.instance_cert:
        ip, _, files = spec.partition("=")
        cert, _, key = files.partition(",")
        if not ip or not cert or not key:
            p.error("--instance-cert %r: want IP=CERT,KEY" % spec)
        own[ip.strip("[]")] = (cert, key)
    ports = {}
    for spec in ARGS.listen:
        ip, port = spec.rsplit(":", 1)
        ip = ip.strip("[]")
        cert, key = own.pop(ip, (ARGS.cert, ARGS.key))
        if cert is None or key is None:
            p.error("instance %s: no serving certificate (--cert/--key or --instance-cert)" % ip)
        inst = Instance(CLUSTER, ip, int(port), serving_context(cert, key))
        inst.start(join=False)
        INSTANCES[inst.ip] = inst
        ports[inst.ip] = inst.port
        CLUSTER.port = inst.port
    if own:
        p.error("--instance-cert for %s, which has no --listen" % ", ".join(sorted(own)))
    if ARGS.members:
        st = CLUSTER.set_members([m for m in ARGS.members.split(",") if m])
        if st is not None:
            p.error("--members: %s" % st["message"])
    else:  # every instance the API lets the reconciler list
        CLUSTER.set_members([m for m in INSTANCES if ip_errors(m, None, "") == []])
    ctl = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Control)
    ctl.daemon_threads = True
    threading.Thread(target=ctl.serve_forever, daemon=True).start()
    tmp = ARGS.ready_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"instances": ports, "control": ctl.server_address[1], "pid": os.getpid()}, f)
    os.rename(tmp, ARGS.ready_file)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


ARGS = None
ARGS_REVOKED = set()
CLUSTER = None
INSTANCES = {}

if __name__ == "__main__":
    sys.exit(main())
