#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""--prefer nearest|zone: apiservers in network namespaces of their own
behind netemu links (tests/tools: the tc netem stand-in) at measured
round trips, and zones published by the fake cluster. Every scenario runs
in a network namespace of its own (unshare -n; root, else skipped)."""

import json
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
from harness import (Apilb, Backend, Fail, check, reexec_in_netns, run,  # noqa: E402
                     scenario, whoami)

reexec_in_netns(__file__)
import test_watch as tw  # noqa: E402  (in this namespace: its fake cluster's addresses)
from delaynet import Link, Netns  # noqa: E402

# The example: one apiserver 0.2 ms away, two 2 ms away (round trips;
# each direction pays half).
NEAR_ONE_WAY, FAR_ONE_WAY = "100us", "1ms"


class Site:
    """An apiserver stand-in (a harness Backend answering whoami) in its own
    namespace behind a netemu link."""

    def __init__(self, k, one_way, extra=()):
        self.ns = Netns()
        self.ip = "10.233.%d.2" % k
        self.link = Link(self.ns, "10.233.%d.1" % k, self.ip, ["--delay", one_way, *extra])
        with self.ns.entered():
            self.backend = Backend(self.ip, name="site%d" % k)
        self.addr = "%s:%d" % (self.ip, self.backend.port)


def sites(near_extra=()):
    return [Site(1, NEAR_ONE_WAY, near_extra), Site(2, FAR_ONE_WAY), Site(3, FAR_ONE_WAY)]


def start(ss, *extra, prefer="nearest"):
    args = ["--health-interval", "300ms", "--health-timeout", "1s", "--connect-timeout", "300ms",
            "--rise", "1", "--fall", "1"]
    if prefer is not None:
        args += ["--prefer", prefer]
    for s in ss:
        args += ["--upstream", s.addr]
    return Apilb(*args, *extra, health="tcp", admin=True)


def upstreams(a):
    code, body = a.admin("/upstreams")
    check(code == 200, "/upstreams answered %d: %s" % (code, body))
    return {u["address"]: u for u in json.loads(body)["upstreams"]}


def wait_tiers(a, want, timeout=15.0):
    """Waits until /upstreams shows the tiers want {addr: tier}, each with a
    measured round trip; returns the upstreams."""
    end = time.time() + timeout
    while True:
        u = upstreams(a)
        got = {k: v.get("tier") for k, v in u.items()}
        if got == want and all(v.get("rtt_seconds") for v in u.values()):
            return u
        if time.time() > end:
            raise Fail("tiers %r (rtt %r), want %r" % (
                got, {k: v.get("rtt_seconds") for k, v in u.items()}, want))
        time.sleep(0.1)


def shares(a, n, names):
    """Where n new connections land: {name: count}."""
    got = {x: 0 for x in names}
    for _ in range(n):
        got[whoami(a.port)] += 1
    return got


def tier_changes(a):
    return [l for l in a.lines() if "upstream tier changed" in l and "from=none" not in l]


@scenario
def nearest_share():
    """Nearest sends >= 95 % of new connections to the near apiserver; the
    same set without preference spreads them."""
    ss = sites()
    names = [s.backend.name for s in ss]
    a = start(ss)
    try:
        u = wait_tiers(a, {ss[0].addr: 0, ss[1].addr: 1, ss[2].addr: 1})
        got = shares(a, 200, names)
        print("nearest: %s; measured rtt %s" % (got, {k: v["rtt_seconds"] for k, v in u.items()}))
        check(got["site1"] >= 190, "near apiserver got %d of 200 new connections" % got["site1"])
        check(re.search(r"apilb_upstream_tier\{upstream=\"%s\"\} 1" % re.escape(ss[1].addr),
                        a.admin("/metrics")[1]), "no apilb_upstream_tier sample")
        rtt = tw.metric(a, 'apilb_upstream_rtt_seconds{upstream="%s"}' % ss[1].addr)
        check(rtt is not None and 0.0019 < rtt < 0.02, "far apilb_upstream_rtt_seconds %r" % rtt)
        a.wait_log(r"upstream tier changed.*upstream=%s from=\S+ to=1 reason=(base|joined) "
                   r"rtt_ms=" % ss[1].addr)
    finally:
        a.stop()
    b = start(ss, prefer="none")
    try:
        got = shares(b, 200, names)
        print("none: %s" % got)
        check(got["site1"] < 120, "without preference the near one got %d of 200" % got["site1"])
    finally:
        b.stop()


def failover_time(ss, prefer):
    """Black-holes the near link, then times 20 new connections; restores."""
    a = start(ss, prefer=prefer)
    try:
        if prefer == "nearest":
            wait_tiers(a, {ss[0].addr: 0, ss[1].addr: 1, ss[2].addr: 1})
        else:
            time.sleep(1)
        ss[0].link.set("both", drop=1)
        t0 = time.time()
        slowest = 0.0
        for _ in range(20):
            t1 = time.time()
            name = whoami(a.port, timeout=5)
            slowest = max(slowest, time.time() - t1)
            check(name != "site1", "a connection reached the black-holed apiserver")
        return time.time() - t0, slowest
    finally:
        a.stop()
        ss[0].link.set("both", drop=0)


@scenario
def blackhole_failover():
    """Black-holing the near apiserver: new connections fail over as fast
    as they do without preference."""
    ss = sites()
    took_none, slow_none = failover_time(ss, "none")
    took_near, slow_near = failover_time(ss, "nearest")
    print("20 connections after the black hole: nearest %.2fs (slowest %.2fs), none %.2fs "
          "(slowest %.2fs)" % (took_near, slow_near, took_none, slow_none))
    check(slow_near <= 0.3 + 0.5, "a connection waited %.2fs (connect timeout 0.3s)" % slow_near)
    check(took_near <= took_none + 0.5, "nearest failed over in %.2fs, none in %.2fs"
          % (took_near, took_none))


@scenario
def recovery_ramp():
    """Brought back, the near apiserver regains its share gradually over
    --prefer-ramp, not at once."""
    ss = sites()
    names = [s.backend.name for s in ss]
    a = start(ss, "--prefer-ramp", "4s")
    try:
        wait_tiers(a, {ss[0].addr: 0, ss[1].addr: 1, ss[2].addr: 1})
        ss[0].link.set("both", drop=1)
        a.wait_log(r"upstream health changed.*upstream=%s.*to=unhealthy" % ss[0].addr, 10)
        mark = len(a.lines())
        ss[0].link.set("both", drop=0)
        a.wait_log(r"ramping its share.*upstream=%s" % ss[0].addr, 10, start=mark)
        windows = []
        t0 = time.time()
        while time.time() - t0 < 6:
            w0 = time.time()
            got = shares(a, 20, names)
            windows.append((round(w0 - t0, 1), got["site1"]))
        per_s = {}
        for t, c in windows:
            per_s.setdefault(int(t), []).append(c)
        print("near apiserver's share of new connections in each second after it came back "
              "(ramp 4s): %s" % ", ".join("%ds: %.0f%%" % (k, 100.0 * sum(v) / (20 * len(v)))
                                          for k, v in sorted(per_s.items())))
        early = [c for t, c in windows if t < 1.0]
        late = [c for t, c in windows if t >= 4.5]
        check(early and max(early) <= 12, "right after recovery it got %r of 20" % early)
        check(late and min(late) >= 18, "after the ramp it got %r of 20" % late)
    finally:
        a.stop()


@scenario
def jitter_no_flap():
    """Jitter on the near link (+-0.4 ms each way on 0.1 ms) does not make
    apilb flap between tiers: a fourth apiserver at 1.6 ms sits where a
    per-sample estimate would move it in and out of tier 0 (a near sample of
    0.9 ms lets 2.3 ms join), outside even the stay band of the smoothed one
    (3 x 0.13 + 1 ms: at 1.2 ms, measured first, it could stay in tier 0)."""
    ss = sites(near_extra=["--jitter", "400us"])
    ss.append(Site(4, "800us"))
    names = [s.backend.name for s in ss]
    a = start(ss)
    try:
        wait_tiers(a, {ss[0].addr: 0, ss[1].addr: 1, ss[2].addr: 1, ss[3].addr: 1})
        before = len(tier_changes(a))
        got = {x: 0 for x in names}
        t0 = time.time()
        while time.time() - t0 < 8:
            for k, v in shares(a, 20, names).items():
                got[k] += v
        changes = tier_changes(a)[before:]
        print("8 s of jitter: %d tier changes; connections %s" % (len(changes), got))
        check(not changes, "tiers flapped:\n" + "\n".join(changes))
        check(got["site1"] >= 0.95 * sum(got.values()), "near share %r" % got)
    finally:
        a.stop()


def zone_start(fake, d, zone, *extra):
    return tw.start_apilb(fake, tw.kubeconfig(d, tw.token_user(d)), "--prefer", "zone",
                          "--zone", zone, "--prefer-ramp", "0", *extra)


@scenario
def zone_published():
    """--prefer zone with zones the fake cluster publishes: same zone first
    (>= 95 %), spill-over while its apiserver is down, back after."""
    d, fake = tw.new_case()
    ips = tw.IPS
    fake.ctl("/members", {"ips": ips, "zones": {ips[0]: "zone-a", ips[1]: "zone-b",
                                                ips[2]: "zone-c"}})
    a = zone_start(fake, d, "zone-b")
    try:
        tw.wait_discovered(a, ips)
        a.wait_log(r"upstream tier changed.*upstream=%s:6443 .*to=0 reason=same-zone" % ips[1])
        got = tw.served_by(fake, a, 40)
        print("zone-b node: %d of 40 on the zone-b apiserver" % got.count(ips[1]))
        check(got.count(ips[1]) >= 38, "same zone got %d of 40: %r" % (got.count(ips[1]), got))
        u = upstreams(a)
        check(u["%s:6443" % ips[0]]["tier"] == 1 and u["%s:6443" % ips[1]]["zone_source"] ==
              "cluster", "upstreams: %r" % u)
        fake.ctl("/instance/%s/unready" % ips[1])
        a.wait_log(r"upstream health changed.*upstream=%s:6443.*to=unhealthy" % ips[1], 10)
        got = tw.served_by(fake, a, 20)
        print("its apiserver unready: %r" % sorted(set(got)))
        check(ips[1] not in got and set(got) <= {ips[0], ips[2]}, "spill-over: %r" % got)
        fake.ctl("/instance/%s/ready" % ips[1])
        a.wait_log(r"upstream health changed.*upstream=%s:6443.*to=healthy" % ips[1], 10)
        # Unready, it also left the slice: back once discovery lists it again.
        end = time.time() + 10
        while not upstreams(a).get("%s:6443" % ips[1], {}).get("usable"):
            check(time.time() < end, "%s not usable again" % ips[1])
            time.sleep(0.05)
        got = tw.served_by(fake, a, 20)
        check(got.count(ips[1]) >= 19, "back: %r" % got)
    finally:
        a.stop()
        fake.stop()


@scenario
def zone_flag():
    """--upstream-zone names the zone of apiservers the cluster publishes
    none for."""
    d, fake = tw.new_case()
    ips = tw.IPS
    a = zone_start(fake, d, "zone-x", "--upstream-zone", "%s=zone-x" % ips[2])
    try:
        tw.wait_discovered(a, ips)
        a.wait_log(r"upstream tier changed.*upstream=%s:6443 .*to=0 reason=same-zone" % ips[2])
        got = tw.served_by(fake, a, 30)
        check(got.count(ips[2]) >= 29, "zone-x got %d of 30: %r" % (got.count(ips[2]), got))
        u = upstreams(a)["%s:6443" % ips[2]]
        check(u["zone"] == "zone-x" and u["zone_source"] == "flag", "upstream: %r" % u)
        check(tw.metric(a, 'apilb_upstream_zone_info{upstream="%s:6443",zone="zone-x"}' % ips[2])
              == 1, "no zone metric for the flag's zone")
    finally:
        a.stop()
        fake.stop()


def node_requests(fake):
    return [r for r in fake.state()["requests"] if r[1].startswith("/api/v1/nodes/")]


def node_start(fake, d, *extra):
    """--prefer zone without --zone: the zone comes from the node object."""
    return tw.start_apilb(fake, tw.kubeconfig(d, tw.token_user(d)), "--prefer", "zone",
                          "--node-name", "node-7.example", "--prefer-ramp", "0", *extra)


@scenario
def zone_node_object():
    """--node-name: the node object's topology.kubernetes.io/zone label is
    the node's zone (the same-zone apiserver gets the connections), read
    once per LIST, not in a loop."""
    d, fake = tw.new_case()
    ips = tw.IPS
    fake.ctl("/members", {"ips": ips, "zones": {ips[0]: "zone-a", ips[1]: "zone-b",
                                                ips[2]: "zone-c"}})
    fake.ctl("/nodes", {"name": "node-7.example",
                        "labels": {"topology.kubernetes.io/zone": "zone-c",
                                   "kubernetes.io/hostname": "node-7"}})
    a = node_start(fake, d)
    try:
        print(a.wait_log(r'"node zone" zone=zone-c from=node-object node=node-7.example'))
        tw.wait_discovered(a, ips)
        a.wait_log(r"upstream tier changed.*upstream=%s:6443 .*to=0 reason=same-zone" % ips[2])
        got = tw.served_by(fake, a, 30)
        print("zone-c node: %d of 30 on the zone-c apiserver" % got.count(ips[2]))
        check(got.count(ips[2]) >= 29, "zone-c got %d of 30: %r" % (got.count(ips[2]), got))
        check(upstreams(a)["%s:6443" % ips[0]]["tier"] == 1, "zone-a not in tier 1")
        time.sleep(2)
        reqs = node_requests(fake)
        print("node object GETs in the first seconds: %d" % len(reqs))
        check(1 <= len(reqs) <= 2 and all(r[1] == "/api/v1/nodes/node-7.example" for r in reqs),
              "node requests: %r" % reqs)
        check(not [x for x in a.lines() if "node zone unknown" in x], "a warning: %r" % a.lines())
    finally:
        a.stop()
        fake.stop()


@scenario
def zone_node_relist():
    """The node object is read again at each relist: a node relabelled to
    another zone moves the preference there after the next 410."""
    d, fake = tw.new_case(extra=("--bookmark-interval", "1000"))
    ips = tw.IPS
    fake.ctl("/members", {"ips": ips, "zones": {ips[0]: "zone-a", ips[1]: "zone-b",
                                                ips[2]: "zone-c"}})
    fake.ctl("/nodes", {"name": "node-7.example",
                        "labels": {"topology.kubernetes.io/zone": "zone-c"}})
    a = node_start(fake, d, "--watch-timeout", "2s")
    try:
        a.wait_log(r'"node zone" zone=zone-c from=node-object')
        tw.wait_discovered(a, ips)
        a.wait_log(r"upstream tier changed.*upstream=%s:6443 .*to=0 reason=same-zone" % ips[2])
        fake.ctl("/nodes", {"name": "node-7.example",
                            "labels": {"topology.kubernetes.io/zone": "zone-a"}})
        fake.ctl("/compact")
        a.wait_log(r'watch expired \(410\): re-listing', 8)
        print(a.wait_log(r'"node zone" zone=zone-a from=node-object', 5))
        print(a.wait_log(r"upstream tier changed.*upstream=%s:6443 from=1 to=0 reason=same-zone"
                         % ips[0], 5))
        a.wait_log(r"upstream tier changed.*upstream=%s:6443 from=0 to=1 reason=other-zone"
                   % ips[2], 5)
        got = tw.served_by(fake, a, 20)
        check(got.count(ips[0]) >= 19, "zone-a got %d of 20: %r" % (got.count(ips[0]), got))
        print("after the relist: %d of 20 on the zone-a apiserver" % got.count(ips[0]))
        # A 503 on the node GET of the next relist keeps the zone.
        n = len(a.lines())
        gets = len(node_requests(fake))
        fake.ctl("/status", {"code": 503, "retry_after": 0, "count": 1,
                             "path": "/api/v1/nodes/"})
        fake.ctl("/compact")
        a.wait_log(r'watch expired \(410\): re-listing', 8, start=n)
        end = time.time() + 5
        while len(node_requests(fake)) == gets:
            check(time.time() < end, "no node GET after the relist")
            time.sleep(0.05)
        check(fake.state()["status_faults"] == 0, "the 503 was not served")
        time.sleep(1)
        later = a.lines()[n:]
        check(not [x for x in later if "node zone" in x or "tier changed" in x],
              "the zone changed after a 503: %r" % later)
        got = tw.served_by(fake, a, 10)
        check(got.count(ips[0]) == 10, "zone-a got %d of 10 after a 503: %r"
              % (got.count(ips[0]), got))
    finally:
        a.stop()
        fake.stop()


@scenario
def zone_node_forbidden():
    """Without `get nodes` (a real 403 Status) or without the label: one
    warning line naming why, every apiserver in tier 0 (no-node-zone), no
    retry loop, no crash."""
    d, fake = tw.new_case()
    ips = tw.IPS
    fake.ctl("/members", {"ips": ips, "zones": {ips[0]: "zone-a", ips[1]: "zone-b",
                                                ips[2]: "zone-c"}})
    fake.ctl("/nodes", {"name": "node-7.example", "labels": {"topology.kubernetes.io/zone": "a"}})
    fake.ctl("/access", {"user": "token-one", "deny": ["get nodes"]})
    a = node_start(fake, d)
    try:
        line = a.wait_log(r"node zone unknown")
        print(line)
        check("403" in line and 'cannot get resource \\"nodes\\"' in line, "warning: %s" % line)
        tw.wait_discovered(a, ips)
        for ip in ips:
            a.wait_log(r"upstream tier changed.*upstream=%s:6443 .*to=0 reason=no-node-zone" % ip)
        time.sleep(2)
        warns = [x for x in a.lines() if "node zone unknown" in x]
        print("warning lines: %d, node GETs: %d" % (len(warns), len(node_requests(fake))))
        check(len(warns) == 1, "warnings: %r" % warns)
        check(len(node_requests(fake)) <= 2, "node GETs: %r" % node_requests(fake))
        check(a.proc.poll() is None, "apilb exited")
    finally:
        a.stop()
        fake.stop()
    # A node without the label: the same, with the reason.
    d, fake = tw.new_case()
    fake.ctl("/nodes", {"name": "node-7.example", "labels": {"kubernetes.io/hostname": "n"}})
    a = node_start(fake, d)
    try:
        line = a.wait_log(r"node zone unknown")
        print(line)
        check("has no label topology.kubernetes.io/zone" in line, "warning: %s" % line)
    finally:
        a.stop()
        fake.stop()


if __name__ == "__main__":
    run()
