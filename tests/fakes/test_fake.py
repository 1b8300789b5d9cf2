# SPDX-License-Identifier: Apache-2.0
"""Checks the fake kube-apiserver against the API behaviour it stands for
(../../../shared/reference/k8s-watch-spec.md sections 1, 2, 5 and 6) where
apilb's own scenarios do not reach: exact Status bodies, list shape, the
Endpoints deprecation warning, health endpoints with ?verbose and ?exclude,
streaming lists, selector transitions, 504 for a future resourceVersion,
the addresses endpoints may not carry (422 Invalid) and several slices.
A fake that drifts from the API would make every discovery test lie."""

import http.client
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SLICES = ("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
          "?labelSelector=kubernetes.io%2Fservice-name%3Dkubernetes")
FAILED = []


def check(cond, what):
    if not cond:
        FAILED.append(what)
        print("FAIL: " + what)


class Fake:
    def __init__(self, *extra):
        self.d = tempfile.mkdtemp(prefix="apilb-fake-")
        subprocess.run(["bash", os.path.join(HERE, "mkcerts.sh"), self.d], check=True)
        with open(os.path.join(self.d, "token"), "w") as f:
            f.write("secret-token\n")
        ready = os.path.join(self.d, "ready.json")
        self.proc = subprocess.Popen([
            sys.executable, os.path.join(HERE, "fake_apiserver.py"),
            "--cert", os.path.join(self.d, "server.pem"),
            "--key", os.path.join(self.d, "server.key"),
            "--token-file", os.path.join(self.d, "token"), "--ready-file", ready,
            "--listen", "127.0.0.1:0", "--members", "10.213.0.2,10.213.0.3",
            "--bookmark-interval", "1", *extra])
        end = time.time() + 10
        while not os.path.exists(ready):
            if time.time() > end or self.proc.poll() is not None:
                raise SystemExit("the fake did not start")
            time.sleep(0.05)
        with open(ready) as f:
            info = json.load(f)
        self.port = info["instances"]["127.0.0.1"]
        self.control = info["control"]
        self.ctx = ssl.create_default_context(cafile=os.path.join(self.d, "ca.pem"))

    def conn(self):
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=10)

    def get(self, path, token="secret-token"):
        c = self.conn()
        c.request("GET", path, headers={"Authorization": "Bearer " + token} if token else {})
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, dict(r.getheaders()), body

    def watch(self, path, until, timeout=5.0):
        """Reads watch events until until(events) is true; returns them."""
        c = self.conn()
        c.request("GET", path, headers={"Authorization": "Bearer secret-token"})
        r = c.getresponse()
        events, buf, end = [], b"", time.time() + timeout
        while time.time() < end and not until(events):
            data = r.read1(65536)
            if not data:
                break
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                events.append(json.loads(line))
        c.close()
        return r.status, events

    def review(self, verb, resource, group):
        """(status, body) of a SelfSubjectAccessReview for verb on resource."""
        c = self.conn()
        c.request("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                  body=json.dumps({"apiVersion": "authorization.k8s.io/v1",
                                   "kind": "SelfSubjectAccessReview",
                                   "spec": {"resourceAttributes": {
                                       "namespace": "default", "verb": verb, "group": group,
                                       "resource": resource}}}),
                  headers={"Authorization": "Bearer secret-token",
                           "Content-Type": "application/json"})
        r = c.getresponse()
        body = json.loads(r.read())
        c.close()
        return r.status, body

    def ctl(self, path, body):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.control, path),
                                     data=json.dumps(body).encode(), method="POST")
        urllib.request.urlopen(req, timeout=10).read()

    def ctl_status(self, path, body):
        """POSTs to the control API; returns (code, parsed body) even on errors."""
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.control, path),
                                     data=json.dumps(body).encode(), method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        subprocess.run(["rm", "-rf", self.d])


def main():
    f = Fake()
    try:
        code, _, body = f.get(SLICES, token="wrong")
        check(code == 401 and json.loads(body) == {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Unauthorized", "reason": "Unauthorized", "code": 401},
            "401 body: %r" % body)
        code, _, body = f.get(SLICES)
        lst = json.loads(body)
        check(code == 200 and lst["kind"] == "EndpointSliceList" and
              isinstance(lst["metadata"]["resourceVersion"], str), "list: %r" % body[:200])
        item = lst["items"][0]
        check("kind" not in item and "apiVersion" not in item, "list items carry kind")
        check(item["addressType"] == "IPv4" and
              item["metadata"]["labels"] == {"kubernetes.io/service-name": "kubernetes"} and
              [e["addresses"] for e in item["endpoints"]] == [["10.213.0.2"], ["10.213.0.3"]] and
              all(e["conditions"]["ready"] is True for e in item["endpoints"]) and
              item["ports"] == [{"name": "https", "protocol": "TCP", "port": f.port}],
              "slice: %r" % item)
        code, headers, body = f.get("/api/v1/namespaces/default/endpoints/kubernetes")
        ep = json.loads(body)
        check(code == 200 and headers.get("Warning", "").startswith('299 - "v1 Endpoints is '
                                                                      'deprecated'),
              "Endpoints warning: %r" % headers)
        check(ep["metadata"]["labels"] == {"endpointslice.kubernetes.io/skip-mirror": "true"}
              and ep["subsets"][0]["ports"][0]["name"] == "https", "endpoints: %r" % ep)
        rv = int(lst["metadata"]["resourceVersion"])
        code, _, body = f.get(SLICES + "&resourceVersion=%d" % (rv + 1000))
        st = json.loads(body)
        check(code == 504 and st["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge",
              "future RV: %d %r" % (code, st))

        # Health endpoints, like kube-apiserver's.
        code, _, body = f.get("/readyz", token=None)
        check((code, body) == (200, b"ok"), "readyz: %d %r" % (code, body))
        code, _, body = f.get("/readyz?verbose", token=None)
        check(code == 200 and b"[+]shutdown ok" in body and body.endswith(b"readyz check passed\n"),
              "readyz?verbose: %r" % body)
        f.ctl("/instance/127.0.0.1/unready", {})
        code, _, body = f.get("/readyz", token=None)
        check(code == 500 and b"[-]shutdown failed: reason withheld" in body, "unready: %r" % body)
        code, _, body = f.get("/readyz?exclude=shutdown", token=None)
        check(code == 200, "readyz?exclude=shutdown: %d %r" % (code, body))
        code, _, body = f.get("/livez", token=None)
        check((code, body) == (200, b"ok"), "livez while unready: %d %r" % (code, body))
        f.ctl("/instance/127.0.0.1/ready", {})

        # A streaming list: ADDED for what exists, then the end-of-initial bookmark.
        code, ev = f.watch(SLICES + "&watch=true&sendInitialEvents=true&allowWatchBookmarks=true"
                           "&resourceVersionMatch=NotOlderThan",
                           lambda e: any(x["type"] == "BOOKMARK" for x in e))
        check(code == 200 and [x["type"] for x in ev][:2] == ["ADDED", "BOOKMARK"] and
              ev[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"},
              "streaming list: %r" % ev[:2])
        code, _, body = f.get(SLICES + "&watch=true&sendInitialEvents=true")
        check(code == 422 and json.loads(body)["reason"] == "Invalid", "no bookmarks: %d" % code)

        # Selector transition: the slice loses its label -> DELETED with its
        # last content; regains it -> ADDED.
        code, ev = f.watch(SLICES + "&watch=true&resourceVersion=%d" % rv,
                           lambda e: (len(e) == 0 and f.ctl("/label", {"on": False})) or
                           any(x["type"] == "DELETED" for x in e))
        dele = [x for x in ev if x["type"] == "DELETED"]
        check(dele and dele[0]["object"]["metadata"]["labels"] ==
              {"kubernetes.io/service-name": "kubernetes"} and
              int(dele[0]["object"]["metadata"]["resourceVersion"]) > rv,
              "DELETED on losing the label: %r" % ev)
        code, _, body = f.get(SLICES)
        check(json.loads(body)["items"] == [], "an unlabeled slice is still listed")
        f.ctl("/label", {"on": True})
        code, _, body = f.get(SLICES)
        check(len(json.loads(body)["items"]) == 1, "the relabeled slice is not listed")

        # SelfSubjectAccessReview: 201 with the review and status.allowed,
        # agreeing with what a LIST by the same user gets.
        code, body = f.review("list", "endpointslices", "discovery.k8s.io")
        check(code == 201 and body["kind"] == "SelfSubjectAccessReview" and
              body["status"]["allowed"] is True, "review allowed: %d %r" % (code, body))
        f.ctl("/access", {"user": "secret-token", "deny": ["list endpointslices"]})
        code, body = f.review("list", "endpointslices", "discovery.k8s.io")
        check(code == 201 and body["status"]["allowed"] is False, "review denied: %r" % body)
        code, _, body = f.get(SLICES)
        check(code == 403 and json.loads(body)["reason"] == "Forbidden",
              "LIST by a user denied list: %d" % code)
        code, body = f.review("list", "endpointslices", "")
        check(code == 201 and body["status"]["allowed"] is False, "wrong group allowed")
        f.ctl("/access", {"user": "secret-token", "deny": []})

        # GET /api/v1/nodes/NAME: a Node as the API returns it; 404 for
        # another name; 403 Status without `get nodes`.
        f.ctl("/nodes", {"name": "n1", "labels": {"topology.kubernetes.io/zone": "z1"}})
        code, _, body = f.get("/api/v1/nodes/n1")
        node = json.loads(body)
        check(code == 200 and node["kind"] == "Node" and node["apiVersion"] == "v1" and
              node["metadata"]["labels"] == {"topology.kubernetes.io/zone": "z1"},
              "node: %d %s" % (code, body))
        code, _, body = f.get("/api/v1/nodes/n2")
        check(code == 404 and json.loads(body)["details"] == {"name": "n2", "kind": "nodes"},
              "unknown node: %d %s" % (code, body))
        f.ctl("/access", {"user": "secret-token", "deny": ["get nodes"]})
        code, _, body = f.get("/api/v1/nodes/n1")
        st = json.loads(body)
        check(code == 403 and st["kind"] == "Status" and st["reason"] == "Forbidden" and
              "at the cluster scope" in st["message"], "node denied: %d %s" % (code, body))
        f.ctl("/access", {"user": "secret-token", "deny": []})
    finally:
        f.stop()

    # What the API's validation refuses in endpoints (core validation
    # ValidateNonSpecialIP; discovery validation per addressType), with its
    # 422 Invalid Status, is refused by the fake too and never served.
    f = Fake()
    try:
        for ip, why in (("127.0.0.1", "may not be in the loopback range (127.0.0.0/8, ::1/128)"),
                        ("169.254.0.1", "may not be in the link-local range (169.254.0.0/16, "
                                        "fe80::/10)"),
                        ("224.0.0.5", "may not be in the link-local multicast range "
                                      "(224.0.0.0/24, ff02::/10)"),
                        ("0.0.0.0", "may not be unspecified (0.0.0.0)"),
                        ("::1", "may not be in the loopback range (127.0.0.0/8, ::1/128)")):
            code, st = f.ctl_status("/members", {"ips": [ip]})
            cause = 'Invalid value: "%s": %s' % (ip, why)
            check(code == 422 and st == {
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": 'Endpoints "kubernetes" is invalid: subsets[0].addresses[0].ip: '
                           + cause,
                "reason": "Invalid", "details": {"name": "kubernetes", "kind": "Endpoints",
                                                 "causes": [{"reason": "FieldValueInvalid",
                                                             "message": cause,
                                                             "field": "subsets[0].addresses[0].ip"}]},
                "code": 422}, "members %s: %d %r" % (ip, code, st))
        for ip, at, why in (("127.0.0.1", "IPv4", "may not be in the loopback range"),
                            ("169.254.0.1", "IPv4", "may not be in the link-local range"),
                            ("fe80::1", "IPv6", "may not be in the link-local range"),
                            ("ff02::2", "IPv6", "may not be in the link-local multicast range"),
                            ("fd00::1", "IPv4", "must be a valid IPv4 address"),
                            ("10.213.0.7", "IPv6", "must be a valid IPv6 address")):
            code, st = f.ctl_status("/slices/extra", {"addressType": at, "endpoints": [
                {"addresses": ["10.213.0.9" if at == "IPv4" else "fd00::9"]},
                {"addresses": [ip]}]})
            check(code == 422 and st["reason"] == "Invalid" and
                  st["message"].startswith('EndpointSlice.discovery.k8s.io "extra" is invalid: '
                                           'endpoints[1].addresses[0]: Invalid value: "%s": %s'
                                           % (ip, why)) and
                  st["details"]["group"] == "discovery.k8s.io" and
                  st["details"]["kind"] == "EndpointSlice" and
                  st["details"]["causes"][0]["field"] == "endpoints[1].addresses[0]",
                  "slice %s %s: %d %r" % (at, ip, code, st))
        code, st = f.ctl_status("/slices/extra", {"addressType": "IPv4", "endpoints": [
            {"addresses": ["10.213.0.9"], "zone": "zone a"}]})
        check(code == 422 and st["details"]["causes"][0]["field"] == "endpoints[0].zone",
              "zone 'zone a': %d %r" % (code, st))
        code, st = f.ctl_status("/slices/Not_A_Name", {"addressType": "IPv4", "endpoints": []})
        check(code == 422 and st["details"]["causes"][0]["field"] == "metadata.name",
              "name 'Not_A_Name': %d %r" % (code, st))
        f.ctl("/instance/127.0.0.1/ready", {})  # an apiserver on 127.0.0.1 joins: refused
        code, _, body = f.get(SLICES)
        addrs = [e["addresses"][0] for it in json.loads(body)["items"] for e in it["endpoints"]]
        check(code == 200 and addrs == ["10.213.0.2", "10.213.0.3"],
              "refused addresses served: %r" % addrs)
        code, _, body = f.get("/api/v1/namespaces/default/endpoints/kubernetes")
        check([a["ip"] for a in json.loads(body)["subsets"][0]["addresses"]] ==
              ["10.213.0.2", "10.213.0.3"], "Endpoints: %r" % body)

        # Several slices: a second family's slice, written zones and hints,
        # one created and deleted through the API.
        code, st = f.ctl_status("/members", {"ips": ["10.213.0.2", "fd00::2"],
                                             "zones": {"10.213.0.2": "zone-a",
                                                       "fd00::2": "zone-a"}, "hints": True})
        check(code == 200, "dual-stack members: %d %r" % (code, st))
        code, st = f.ctl_status("/slices/extra", {"addressType": "IPv6", "endpoints": [
            {"addresses": ["fd00::9"], "zone": "zone-b", "conditions": {"ready": True}}]})
        check(code == 200, "valid slice refused: %d %r" % (code, st))
        code, _, body = f.get(SLICES)
        items = {it["metadata"]["name"]: it for it in json.loads(body)["items"]}
        check(sorted(items) == ["extra", "kubernetes", "kubernetes-v6"] and
              items["kubernetes"]["addressType"] == "IPv4" and
              items["kubernetes-v6"]["addressType"] == "IPv6" and
              items["kubernetes-v6"]["endpoints"] == [
                  {"addresses": ["fd00::2"], "conditions": {"ready": True}, "zone": "zone-a",
                   "hints": {"forZones": [{"name": "zone-a"}]}}] and
              all(it["metadata"]["labels"] == {"kubernetes.io/service-name": "kubernetes"}
                  for it in items.values()), "slices: %r" % items)
        rv = int(json.loads(body)["metadata"]["resourceVersion"])
        deleted = []

        def delete_once(events):
            if not deleted:
                deleted.append(f.ctl("/slices/extra/delete", {}))
            return any(x["type"] == "DELETED" for x in events)
        code, ev = f.watch(SLICES + "&watch=true&resourceVersion=%d" % rv, delete_once)
        check([(x["type"], x["object"]["metadata"]["name"]) for x in ev] ==
              [("DELETED", "extra")], "delete: %r" % ev)
        code, st = f.ctl_status("/slices/extra/delete", {})
        check(code == 404 and st["reason"] == "NotFound", "delete twice: %d %r" % (code, st))
        f.ctl("/members", {"ips": ["10.213.0.2"]})
        code, _, body = f.get(SLICES)
        check([it["metadata"]["name"] for it in json.loads(body)["items"]] == ["kubernetes"],
              "the other family's slice outlived its members: %r" % body[:300])
    finally:
        f.stop()

    f = Fake("--no-watch-list")
    try:
        code, _, body = f.get(SLICES + "&watch=true&sendInitialEvents=true&allowWatchBookmarks=true"
                              "&resourceVersionMatch=NotOlderThan")
        check(code == 422 and b"WatchList" in body, "WatchList off: %d %r" % (code, body[:100]))
    finally:
        f.stop()
    # --shutdown-send-retry-after: after the shutdown delay, 429 with
    # Retry-After: 5 and Connection: close for everything but the health
    # paths (apiserver pkg/server/filters/with_retry_after.go), then gone.
    f = Fake()
    try:
        f.ctl("/instance/127.0.0.1/stop", {"delay": 0.2, "retry_after": 2})
        time.sleep(0.6)
        code, hdrs, body = f.get(SLICES)
        st = json.loads(body)
        check(code == 429 and hdrs.get("Retry-After") == "5" and
              hdrs.get("Connection") == "close" and st["reason"] == "TooManyRequests" and
              "shutting down" in st["message"], "shutdown 429: %d %r %r" % (code, hdrs, body))
        code, _, _ = f.get("/readyz", token=None)
        check(code == 500, "/readyz while rejecting: %d" % code)
        time.sleep(2.0)
        try:
            f.get("/readyz", token=None)
            check(False, "still listening after the retry-after phase")
        except OSError:
            pass
    finally:
        f.stop()
    if FAILED:
        sys.exit(1)
    print("the fake matches the API on every point checked")


if __name__ == "__main__":
    main()
