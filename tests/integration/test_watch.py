# SPDX-License-Identifier: Apache-2.0
"""Discovery scenarios: apilb's watcher against the fake kube-apiserver
(tests/fakes/fake_apiserver.py), asserting the table apilb really uses
(GET /upstreams) and where new client connections land (curl through apilb,
TLS verified end to end).

Apiservers must not be loopback addresses (apilb rejects 127/8 in endpoints,
as the API does), so every scenario runs in a private network namespace
(unshare -n) whose lo carries 10.213.0.2-9; nothing outside is touched."""

import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
FAKES = os.path.join(HERE, "..", "fakes")

from harness import (APILB, Apilb, Fail, HttpsConn, _children, apiserver_netns, check,
                     metric, raw_admin, run, scenario, tmpdir)

apiserver_netns(__file__)

# Tokens and private keys of these scenarios: Apilb.stop() fails a scenario
# whose log shows any of them.
os.environ["APILB_TEST_SECRETS"] = "token-one,token-two,PRIVATE KEY,Bearer "

IPS = ["10.213.0.2", "10.213.0.3", "10.213.0.4"]


class Fake:
    """The fake apiserver process and its control API."""

    def __init__(self, d, ips=IPS, members=None, extra=(), certs="shared", own=None,
                 extra_sans=""):
        """certs: "shared" (one certificate naming every instance, RKE1's
        shape) or "kubeadm"/"k3s" (each instance its own, naming only its
        own address and the kubernetes names; extra_sans added to each).
        own: {ip: SANs} for instances given a certificate of their own
        making instead."""
        self.d = d
        mk = os.path.join(FAKES, "mkcerts.sh")
        subprocess.run(["bash", mk, d], check=True)
        certs_args = []
        if certs != "shared":
            subprocess.run(["bash", mk, d, "apiservers", certs, *ips], check=True,
                           env=dict(os.environ, EXTRA_SANS=extra_sans))
            certs_args = [x for ip in ips for x in (
                "--instance-cert", "%s=%s,%s" % (ip, os.path.join(d, "apiserver-%s.pem" % ip),
                                                 os.path.join(d, "apiserver-%s.key" % ip)))]
        for ip, sans in (own or {}).items():
            name = "own-%s" % ip
            subprocess.run(["bash", mk, d, "leaf", name, sans], check=True)
            certs_args += ["--instance-cert", "%s=%s,%s" % (
                ip, os.path.join(d, name + ".pem"), os.path.join(d, name + ".key"))]
        self.token_file = os.path.join(d, "fake-token")
        with open(self.token_file, "w") as f:
            f.write("token-one\n")
        ready = os.path.join(d, "ready.json")
        args = [sys.executable, os.path.join(FAKES, "fake_apiserver.py"),
                "--cert", os.path.join(d, "server.pem"), "--key", os.path.join(d, "server.key"),
                "--client-ca", os.path.join(d, "client-ca.pem"),
                "--token-file", self.token_file, "--ready-file", ready,
                "--bookmark-interval", "1", "--lease-ttl", "2", *certs_args, *extra]
        for ip in ips:
            args += ["--listen", "%s:6443" % ip]
        if members is not None:
            args += ["--members", ",".join(members)]
        self.proc = subprocess.Popen(args)
        _children.append(self.proc)
        end = time.time() + 10
        while not os.path.exists(ready):
            if time.time() > end or self.proc.poll() is not None:
                raise Fail("the fake apiserver did not start")
            time.sleep(0.05)
        with open(ready) as f:
            self.info = json.load(f)
        self.ca = os.path.join(d, "ca.pem")

    def ctl(self, path, body=None):
        data = json.dumps(body or {}).encode()
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.info["control"], path),
                                     data=data, method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)

    def ctl_status(self, path, body=None):
        """(code, body) of a control request, errors included (422 Invalid)."""
        try:
            return 200, self.ctl(path, body)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    def state(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/" % self.info["control"],
                                    timeout=10) as r:
            return json.load(r)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def kubeconfig(d, user, server="https://10.213.0.2:6443", tls_server_name=None, ca="ca.pem",
               name="kubeconfig"):
    """A kubeconfig with paths relative to its own directory."""
    cluster = "    certificate-authority: %s\n    server: %s\n" % (ca, server)
    if tls_server_name:
        cluster += "    tls-server-name: %s\n" % tls_server_name
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write("apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n%s"
                "users:\n- name: test\n  user:\n%s"
                "contexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n"
                "current-context: test\npreferences: {}\n" % (cluster, user))
    return path


def token_user(d, token="token-one"):
    """A projected-token layout: token -> ..data/token, ..data -> ..<stamp>."""
    sa = os.path.join(d, "sa")
    os.makedirs(sa, exist_ok=True)
    rotate_token(sa, token)
    os.symlink("..data/token", os.path.join(sa, "token"))
    return "    tokenFile: sa/token\n"


def rotate_token(sa, token):
    stamp = "..%d" % time.time_ns()
    os.makedirs(os.path.join(sa, stamp))
    with open(os.path.join(sa, stamp, "token"), "w") as f:
        f.write(token + "\n")
    tmp = os.path.join(sa, "..data_tmp")
    os.symlink(stamp, tmp)
    os.rename(tmp, os.path.join(sa, "..data"))  # the atomic swap kubelet does


def start_apilb(fake, kc, *extra, seeds=("10.213.0.2:6443",), health="readyz",
                debounce="200ms"):
    args = ["--kubeconfig", kc, "--discovery-debounce", debounce, "--health-interval", "300ms",
            "--health-timeout", "250ms", "--watch-stall", "3s", "--connect-timeout", "500ms"]
    for s in seeds:
        args += ["--upstream", s]
    return Apilb(*args, *extra, health=health, admin=True)


def upstreams(a):
    code, body = a.admin("/upstreams")
    check(code == 200, "/upstreams answered %d" % code)
    return {u["address"]: u for u in json.loads(body)["upstreams"]}


def discovered(a):
    return sorted(addr for addr, u in upstreams(a).items()
                  if "discovered" in u["sources"] and not u["draining"])


def hostport(ip):
    return "[%s]:6443" % ip if ":" in ip else "%s:6443" % ip


def wait_discovered(a, want, timeout=10.0):
    want = sorted(hostport(ip) for ip in want)
    end = time.time() + timeout
    got = None
    while time.time() < end:
        got = discovered(a)
        if got == want:
            return time.time()
        time.sleep(0.1)
    raise Fail("apilb uses %r, expected %r" % (got, want))


def served_by(fake, a, n=1):
    """Where new client connections land: curl through apilb, TLS verified."""
    out = []
    for _ in range(n):
        p = subprocess.run(["curl", "-sS", "--fail", "--max-time", "5", "--cacert", fake.ca,
                            "--resolve", "kubernetes:%d:127.0.0.1" % a.port,
                            "https://kubernetes:%d/version" % a.port],
                           capture_output=True, text=True, timeout=10)
        check(p.returncode == 0, "curl through apilb failed: %s" % p.stderr.strip())
        out.append(json.loads(p.stdout)["servedBy"])
    return out


def new_case(ips=IPS, members=None, extra=(), **certs):
    d = tmpdir()
    fake = Fake(d, ips, members, extra, **certs)
    return d, fake


@scenario
def initial_sync():
    """One seed is enough: the watcher finds every apiserver and clients use them."""
    d, fake = new_case(certs="kubeadm")
    a = start_apilb(fake, kubeconfig(d, token_user(d)))
    try:
        t0 = time.time()
        wait_discovered(a, IPS)
        print("initial sync: %.2fs after start" % (time.time() - t0))
        # Ties are broken at random, and a health check that times out
        # under load (sanitizers) takes an apiserver out for a moment: wait
        # for all healthy, then connect until each has had one (at most 30:
        # missing one of three by chance is 3 * (2/3)^30, about 2e-5).
        deadline = time.time() + 5
        while set(health_of(a).values()) != {"healthy"}:
            check(time.time() < deadline, "not all healthy: %r" % health_of(a))
            time.sleep(0.1)
        served = []
        while len(served) < 30 and set(served) != set(IPS):
            served += served_by(fake, a)
        check(set(served) == set(IPS), "connections landed on %r (health now %r)"
              % (sorted(set(served)), health_of(a)))
        check(metric(a, 'apilb_watcher_state{state="watching"}') == 1, "watcher not watching")
        code, text = a.admin("/metrics")
        p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                           text=True)
        check(p.returncode == 0, "promtool rejects the watcher metrics: %s" % p.stderr)
        check(metric(a, "apilb_watcher_resource_version_age_seconds") is not None,
              "no resourceVersion age")
        a.wait_log(r'apiservers discovered.*source=endpointslices')
        lists = [r[1] for r in fake.state()["requests"]
                 if "endpointslices" in r[1] and "watch=true" not in r[1]]
        check(lists and "resourceVersion=0" in lists[0],
              "the first LIST is not served from the watch cache: %r" % lists[:1])
    finally:
        a.stop()
        fake.stop()


@scenario
def scale():
    """Scale up (an apiserver joins when ready) and down (graceful stop drains)."""
    d, fake = new_case(IPS + ["10.213.0.5"], members=IPS[:2], certs="kubeadm")
    a = start_apilb(fake, kubeconfig(d, token_user(d)))
    try:
        wait_discovered(a, IPS[:2])
        fake.ctl("/instance/10.213.0.4/ready")
        t0 = time.time()
        wait_discovered(a, IPS)
        print("scale up seen after %.2fs" % (time.time() - t0))
        fake.ctl("/instance/10.213.0.5/ready")
        wait_discovered(a, IPS + ["10.213.0.5"])
        # A kubelet-like kept-alive connection on the apiserver that stops.
        held = None
        for _ in range(16):
            c = HttpsConn(a.port, fake.ca)
            if json.loads(c.get("/version")[1])["servedBy"] == "10.213.0.3":
                held = c
                break
            c.close()
        check(held is not None, "no connection landed on 10.213.0.3")
        # 5 s of shutdown delay: the checks below (12 curl runs through a
        # sanitized apilb on a loaded 2-CPU machine) must end within it.
        fake.ctl("/instance/10.213.0.3/stop", {"delay": 5})
        t0 = time.time()
        wait_discovered(a, ["10.213.0.2", "10.213.0.4", "10.213.0.5"])
        print("graceful removal seen after %.2fs" % (time.time() - t0))
        a.wait_log(r'upstream removed" upstream=10\.213\.0\.3:6443 reason=discovery')
        a.wait_log(r'upstream health changed" upstream=10\.213\.0\.3:6443 .*to=unhealthy'
                   r'.*draining=true', 3)
        check("10.213.0.3" not in served_by(fake, a, 12), "removed apiserver got connections")
        # Removal then drain: during its shutdown delay the apiserver still
        # serves the connections it has, and apilb leaves them be.
        check(time.time() - t0 < 4.5, "too slow to test the drain")
        status, body = held.get("/version")
        check(status == 200 and json.loads(body)["servedBy"] == "10.213.0.3",
              "a draining connection was not served: %d %s" % (status, body))
        check(held.closed(5), "the connection outlived its apiserver")
        print("held connection served during the shutdown delay, closed %.2fs after the stop"
              % (time.time() - t0))
        held.close()
    finally:
        a.stop()
        fake.stop()


@scenario
def crash():
    """A crashed apiserver stays listed until its lease expires; health checks
    keep new connections away from it at once, then it leaves the table."""
    d, fake = new_case(certs="kubeadm")
    a = start_apilb(fake, kubeconfig(d, token_user(d)))
    try:
        wait_discovered(a, IPS)
        mark = len(a.lines())
        fake.ctl("/instance/10.213.0.4/crash")
        t0 = time.time()
        a.wait_log(r'upstream health changed" upstream=10\.213\.0\.4:6443 .*to=unhealthy', 3,
                   start=mark)
        t_unhealthy = time.time() - t0
        check("10.213.0.4" not in served_by(fake, a, 10), "crashed apiserver got connections")
        wait_discovered(a, IPS[:2], 6)
        print("crash: unhealthy after %.2fs, removed (lease expiry) after %.2fs"
              % (t_unhealthy, time.time() - t0))
    finally:
        a.stop()
        fake.stop()


@scenario
def relist_410():
    """A watch resumed from a compacted resourceVersion gets 410 and relists.
    (Bookmarks are off here: they exist precisely to keep a quiet watch's
    resourceVersion inside the server's window.)"""
    d, fake = new_case(extra=("--bookmark-interval", "1000"))
    a = start_apilb(fake, kubeconfig(d, token_user(d)), "--watch-timeout", "2s")
    try:
        wait_discovered(a, IPS)
        fake.ctl("/compact")
        a.wait_log(r'watch expired \(410\): re-listing', 8)
        check((metric(a, "apilb_watcher_relists_total") or 0) >= 1, "relist not counted")
        fake.ctl("/members", {"ips": IPS[:2]})
        wait_discovered(a, IPS[:2])
    finally:
        a.stop()
        fake.stop()


@scenario
def stall():
    """A watch that goes silent is abandoned after --watch-stall."""
    d, fake = new_case()
    a = start_apilb(fake, kubeconfig(d, token_user(d)))
    try:
        wait_discovered(a, IPS)
        fake.ctl("/fault", {"kind": "stall"})
        t0 = time.time()
        a.wait_log(r'watch stalled: reconnecting', 8)
        check(metric(a, 'apilb_watcher_errors_total{kind="stall"}') >= 1, "stall not counted")
        print("stalled watch abandoned after %.2fs (--watch-stall 3s)" % (time.time() - t0))
        fake.ctl("/fault", {"kind": "stall", "on": False})
        fake.ctl("/members", {"ips": IPS[1:]})
        wait_discovered(a, IPS[1:], 15)
    finally:
        a.stop()
        fake.stop()


@scenario
def chunks():
    """Events split into 1-byte chunks are parsed the same."""
    d, fake = new_case(extra=("--chunk-max", "1"))
    a = start_apilb(fake, kubeconfig(d, token_user(d)))
    try:
        wait_discovered(a, IPS)
        for members in (IPS[:1], IPS[1:], IPS):
            fake.ctl("/members", {"ips": members})
            wait_discovered(a, members)
    finally:
        a.stop()
        fake.stop()


@scenario
def garbage():
    """A stream that is not JSON is dropped and listed again; nothing is applied."""
    d, fake = new_case()
    a = start_apilb(fake, kubeconfig(d, token_user(d)))
    try:
        wait_discovered(a, IPS)
        fake.ctl("/fault", {"kind": "garbage"})
        a.wait_log(r'watch stream is not valid JSON', 8)
        check(metric(a, 'apilb_watcher_errors_total{kind="parse"}') >= 1, "garbage not counted")
        check(discovered(a) == sorted("%s:6443" % ip for ip in IPS), "garbage changed the table")
        fake.ctl("/members", {"ips": IPS[:2]})
        wait_discovered(a, IPS[:2], 15)
    finally:
        a.stop()
        fake.stop()


@scenario
def reset_mid_event():
    """The watch connection reset in the middle of an event: reconnect, and
    the change is still seen (no half event is applied)."""
    d, fake = new_case()
    a = start_apilb(fake, kubeconfig(d, token_user(d)))
    try:
        wait_discovered(a, IPS)
        fake.ctl("/fault", {"kind": "reset"})
        fake.ctl("/members", {"ips": IPS[:2]})
        wait_discovered(a, IPS[:2], 15)
        check(metric(a, 'apilb_watcher_errors_total{kind="connect"}') >= 1 or
              metric(a, 'apilb_watcher_errors_total{kind="parse"}') >= 1,
              "the reset was not counted")
    finally:
        a.stop()
        fake.stop()


@scenario
def token_rotation():
    """A projected token rotated through the ..data symlink is used without a restart."""
    d, fake = new_case()
    a = start_apilb(fake, kubeconfig(d, token_user(d)))
    try:
        wait_discovered(a, IPS)
        with open(fake.token_file, "w") as f:
            f.write("token-two\n")   # the apiserver now accepts only the new token
        rotate_token(os.path.join(d, "sa"), "token-two")
        a.wait_log(r'credential files changed', 5)
        fake.ctl("/members", {"ips": IPS[:2]})
        wait_discovered(a, IPS[:2], 10)
        who = [r[2] for r in fake.state()["requests"]]
        check("token:en-two" in who, "the new token was never used: %r" % who[-5:])
        check(not any("token-two" in l or "token-one" in l for l in a.lines()),
              "a token appeared in the log")
    finally:
        a.stop()
        fake.stop()


@scenario
def cert_rotation():
    """kubelet-client-current.pem rotated like kubelet does (new file, symlink
    swap) is used without a restart; the old certificate is then refused."""
    d, fake = new_case()
    mk = os.path.join(FAKES, "mkcerts.sh")
    serial1 = subprocess.run(["bash", mk, d, "client", "kubelet-client-1"], check=True,
                             capture_output=True, text=True).stdout.strip()
    os.symlink("kubelet-client-1.pem", os.path.join(d, "kubelet-client-current.pem"))
    user = ("    client-certificate: kubelet-client-current.pem\n"
            "    client-key: kubelet-client-current.pem\n")
    a = start_apilb(fake, kubeconfig(d, user))
    try:
        wait_discovered(a, IPS)
        serial2 = subprocess.run(["bash", mk, d, "client", "kubelet-client-2"], check=True,
                                 capture_output=True, text=True).stdout.strip()
        upd = os.path.join(d, "kubelet-client-updated.pem")
        os.symlink("kubelet-client-2.pem", upd)
        os.unlink(os.path.join(d, "kubelet-client-current.pem"))
        os.rename(upd, os.path.join(d, "kubelet-client-current.pem"))
        fake.ctl("/revoke", {"serial": serial1})
        a.wait_log(r'credential files changed', 5)
        fake.ctl("/members", {"ips": IPS[1:]})
        wait_discovered(a, IPS[1:], 10)
        who = [r[2] or "" for r in fake.state()["requests"]]
        check(any(serial2 in w for w in who), "the new certificate was never used: %r" % who[-4:])
    finally:
        a.stop()
        fake.stop()


def health_of(a):
    return {addr: u["health"] for addr, u in upstreams(a).items()}


@scenario
def ca_rotation():
    """The cluster CA rotates. apilb trusts only the CA its kubeconfig names:
    once the apiservers serve certificates of a new CA, discovery and health
    checks fail (proving verification); the kubeconfig is then edited to a new
    bundle (old + new CA), which is picked up without a restart; finally the
    bundle is rewritten in place with the new CA alone."""
    d, fake = new_case()
    subprocess.run(["bash", os.path.join(FAKES, "mkcerts.sh"), d, "rotate"], check=True)
    shutil.copy(os.path.join(d, "ca.pem"), os.path.join(d, "bundle-1.pem"))
    kc = kubeconfig(d, token_user(d), ca="bundle-1.pem")
    a = start_apilb(fake, kc)
    try:
        wait_discovered(a, IPS)
        deadline = time.time() + 5
        while set(health_of(a).values()) != {"healthy"}:
            check(time.time() < deadline, "not all healthy: %r" % health_of(a))
            time.sleep(0.1)
        mark = len(a.lines())
        fake.ctl("/serving-cert", {"cert": os.path.join(d, "server2.pem"),
                                   "key": os.path.join(d, "server2.key")})
        a.wait_log(r'upstream health changed" .*to=unhealthy', 5, start=mark)
        a.wait_log(r'(apiserver request failed|watch connection failed).*(certificate|SSL)', 10,
                   start=mark)
        fake.ctl("/members", {"ips": IPS[:2]})
        time.sleep(1.5)
        check(discovered(a) == sorted("%s:6443" % ip for ip in IPS),
              "a change was seen over an unverified connection")

        # kubeadm-style: the kubeconfig is rewritten (atomic rename) to name
        # a bundle that holds both CAs.
        with open(os.path.join(d, "bundle-2.pem"), "w") as f:
            for name in ("ca.pem", "ca2.pem"):
                with open(os.path.join(d, name)) as g:
                    f.write(g.read())
        mark = len(a.lines())
        t0 = time.time()
        os.rename(kubeconfig(d, "    tokenFile: sa/token\n", ca="bundle-2.pem",
                             name="kubeconfig.new"), kc)
        a.wait_log(r'credentials re-read', 5, start=mark)
        a.wait_log(r'health checks use the new cluster CA', 5, start=mark)
        wait_discovered(a, IPS[:2], 15)
        print("new CA in the kubeconfig: discovery resumed %.2fs after the edit"
              % (time.time() - t0))
        deadline = time.time() + 5
        while set(health_of(a).values()) != {"healthy"}:
            check(time.time() < deadline, "health checks still fail: %r" % health_of(a))
            time.sleep(0.1)
        print("health checks verified again %.2fs after the edit" % (time.time() - t0))

        # The old CA leaves the bundle (rewritten in place).
        mark = len(a.lines())
        shutil.copy(os.path.join(d, "ca2.pem"), os.path.join(d, "bundle-2.pem"))
        a.wait_log(r'credential files changed', 5, start=mark)
        fake.ctl("/members", {"ips": IPS})
        wait_discovered(a, IPS, 15)
        time.sleep(1.0)
        check(set(health_of(a).values()) == {"healthy"}, "health: %r" % health_of(a))
        fake.ca = os.path.join(d, "ca2.pem")  # what curl trusts now
        names = set(served_by(fake, a, 9))
        check(len(names) >= 2, "clients reached only %r" % names)
    finally:
        a.stop()
        fake.stop()


@scenario
def retry_after():
    """429 and 503 answers with Retry-After: the watcher waits at least that
    long, then syncs."""
    d, fake = new_case()
    fake.ctl("/status", {"code": 429, "retry_after": 2, "count": 1})
    fake.ctl("/status", {"code": 503, "retry_after": 2, "count": 1})
    t0 = time.time()
    a = start_apilb(fake, kubeconfig(d, token_user(d)), seeds=("10.213.0.2:6443",))
    try:
        wait_discovered(a, IPS, 15)
        dt = time.time() - t0
        print("synced %.2fs after two answers with Retry-After: 2" % dt)
        check(dt >= 4.0, "Retry-After not honoured: synced after %.2fs" % dt)
        a.wait_log(r'LIST failed.*code=429')
        a.wait_log(r'LIST failed.*code=503')
    finally:
        a.stop()
        fake.stop()


@scenario
def retry_after_elsewhere():
    """A 429 with Retry-After from one apiserver while others are usable: the
    next attempt goes to another one after the usual backoff (0.8-1.6 s)
    instead of waiting the 10 s out; with one apiserver (retry_after above)
    the wait is kept."""
    d, fake = new_case()
    fake.ctl("/status", {"code": 429, "retry_after": 10, "count": 1})
    t0 = time.time()
    a = start_apilb(fake, kubeconfig(d, token_user(d)),
                    seeds=tuple("%s:6443" % ip for ip in IPS))
    try:
        wait_discovered(a, IPS, 15)
        dt = time.time() - t0
        lists = [r[0] for r in fake.state()["requests"] if "/endpoint" in r[1]][:2]
        print("synced %.2fs after a 429 with Retry-After: 10 from one of %d apiservers; "
              "the first two LISTs went to %r" % (dt, len(IPS), lists))
        check(dt < 6.0, "Retry-After waited out although other apiservers were there: %.2fs" % dt)
        check(len(lists) == 2 and lists[0] != lists[1],
              "the LIST after the 429 went to the same apiserver: %r" % lists)
        a.wait_log(r'LIST failed.*code=429')
        a.wait_log(r'Retry-After from one apiserver: asking another')
    finally:
        a.stop()
        fake.stop()


@scenario
def slices_forbidden():
    """403 on EndpointSlices falls back to the Endpoints object."""
    d, fake = new_case()
    fake.ctl("/forbid", {"resources": ["endpointslices"]})
    a = start_apilb(fake, kubeconfig(d, token_user(d)))
    try:
        wait_discovered(a, IPS)
        a.wait_log(r'EndpointSlices not available: falling back to Endpoints')
        a.wait_log(r'apiservers discovered.*source=endpoints ')
        fake.ctl("/members", {"ips": IPS[:1]})
        wait_discovered(a, IPS[:1])
    finally:
        a.stop()
        fake.stop()


@scenario
def empty_ignored():
    """An empty list is never applied; the last good set stays."""
    d, fake = new_case()
    a = start_apilb(fake, kubeconfig(d, token_user(d)))
    try:
        wait_discovered(a, IPS)
        fake.ctl("/members", {"ips": []})
        a.wait_log(r'the cluster lists no ready apiserver: keeping the current upstreams', 5)
        time.sleep(1)
        check(discovered(a) == sorted("%s:6443" % ip for ip in IPS), "empty set applied")
        check(set(served_by(fake, a, 6)) <= set(IPS), "clients failed")
    finally:
        a.stop()
        fake.stop()


@scenario
def stream_faults():
    """Broken watch streams: duplicate events, Connection: close after each
    batch, a last chunk cut inside an event, resourceVersion as a number.
    Each time the table apilb uses ends up equal to the cluster's."""
    d, fake = new_case()
    a = start_apilb(fake, kubeconfig(d, token_user(d)))
    try:
        wait_discovered(a, IPS)
        sets = [IPS[:1], IPS[1:], IPS[:2], IPS]
        for i, kind in enumerate(("duplicate", "conn-close", "truncate", "numeric-rv")):
            mark = len(a.lines())
            fake.ctl("/fault", {"kind": kind})
            time.sleep(0.3)  # let a watch start under the fault
            t0 = time.time()
            fake.ctl("/members", {"ips": sets[i]})
            wait_discovered(a, sets[i], 15)
            print("%s: change applied after %.2fs" % (kind, time.time() - t0))
            if kind == "truncate":
                a.wait_log(r'watch stream cut off', 2, start=mark)
            if kind == "numeric-rv":
                a.wait_log(r'watch event without a string resourceVersion', 2, start=mark)
            fake.ctl("/fault", {"kind": kind, "on": False})
        check(metric(a, 'apilb_watcher_errors_total{kind="parse"}') >= 1, "parse error uncounted")
        check(set(served_by(fake, a, 6)) <= set(IPS), "clients failed")
    finally:
        a.stop()
        fake.stop()


@scenario
def selector_transition():
    """The slice loses its label (the watch gets DELETED): apilb keeps the
    last set rather than none; members change meanwhile; the label comes
    back (ADDED) and the new set is applied."""
    d, fake = new_case()
    a = start_apilb(fake, kubeconfig(d, token_user(d)))
    try:
        wait_discovered(a, IPS)
        fake.ctl("/label", {"on": False})
        a.wait_log(r'the cluster lists no ready apiserver: keeping the current upstreams', 5)
        fake.ctl("/members", {"ips": IPS[1:]})
        time.sleep(1.0)
        check(discovered(a) == sorted("%s:6443" % ip for ip in IPS),
              "a change of an unlabeled slice was applied")
        t0 = time.time()
        fake.ctl("/label", {"on": True})
        wait_discovered(a, IPS[1:])
        print("slice labeled again: applied after %.2fs" % (time.time() - t0))
        check(set(served_by(fake, a, 6)) <= set(IPS[1:]), "clients reached a removed apiserver")
    finally:
        a.stop()
        fake.stop()


@scenario
def state_restart():
    """Restart with the state file while every seed (and the kubeconfig's
    server) is dead: the last known apiservers are used at once."""
    d, fake = new_case()
    state = os.path.join(d, "state")
    kc = kubeconfig(d, token_user(d))
    a = start_apilb(fake, kc, "--state-file", state)
    try:
        wait_discovered(a, IPS)
        a.wait_log(r'state file written.*upstreams=3')
    finally:
        a.stop()
    dead = "10.213.0.9:6443"
    kc2 = kubeconfig(d, "    tokenFile: sa/token\n",
                     server="https://%s" % dead, tls_server_name="kubernetes")
    a = start_apilb(fake, kc2, "--state-file", state, seeds=(dead,))
    try:
        t0 = time.time()
        names = set(served_by(fake, a, 6))
        check(names <= set(IPS) and names, "clients after restart reached %r" % names)
        print("restart with every seed dead: first client served %.2fs after start"
              % (time.time() - t0))
        wait_discovered(a, IPS)  # the watcher got through via the state entries
    finally:
        a.stop()
        fake.stop()


@scenario
def kubectl():
    """A real kubectl pointed at apilb reaches the fake through it."""
    exe = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if not exe:
        raise Fail("no kubectl: run scripts/k8s-tools.sh (set KUBECTL)")
    d, fake = new_case(certs="kubeadm")
    a = start_apilb(fake, kubeconfig(d, token_user(d)))
    try:
        wait_discovered(a, IPS)
        kc = kubeconfig(d, "    tokenFile: sa/token\n", server="https://127.0.0.1:%d" % a.port,
                        tls_server_name="kubernetes")
        p = subprocess.run([exe, "--kubeconfig", kc, "get", "--raw", "/version"],
                           capture_output=True, text=True, timeout=30)
        check(p.returncode == 0 and "servedBy" in p.stdout, "kubectl: %s %s" % (p.stdout, p.stderr))
        p = subprocess.run([exe, "--kubeconfig", kc, "get", "--raw",
                            "/api/v1/namespaces/default/endpoints/kubernetes"],
                           capture_output=True, text=True, timeout=30)
        check(p.returncode == 0 and "10.213.0.3" in p.stdout, "kubectl: %s" % p.stderr)
        print("kubectl through apilb: ok")
    finally:
        a.stop()
        fake.stop()


@scenario
def shutdown_retry_after():
    """An apiserver stopping with --shutdown-send-retry-after: it leaves the
    list at once, and after its shutdown delay answers every new request but
    the health paths with 429, Retry-After: 5 and Connection: close, for 5 s,
    before it closes. apilb must send no client there (each curl would fail
    with the 429), and its watcher, whose watches end every 2 s here, must keep
    the table current through that window."""
    d, fake = new_case()
    a = start_apilb(fake, kubeconfig(d, token_user(d)), "--watch-timeout", "2s")
    victim, rest = IPS[0], IPS[1:]
    try:
        wait_discovered(a, IPS)
        fake.ctl("/instance/%s/stop" % victim, {"delay": 0.3, "retry_after": 5})
        t0 = time.time()
        wait_discovered(a, rest, 5)
        time.sleep(max(0.0, t0 + 0.8 - time.time()))  # inside the 429 window now
        names = served_by(fake, a, 20)
        check(victim not in names, "a client reached the apiserver that is shutting down")
        fake.ctl("/members", {"ips": [rest[0]]})  # a change during the window
        t1 = time.time()
        wait_discovered(a, [rest[0]], 8)
        took = time.time() - t1
        in_window = time.time() < t0 + 5.3
        rejected = [r for r in fake.state()["requests"] if r[2] == "rejected"]
        print("shutdown with Retry-After: %d clients served elsewhere, a change seen after %.2fs "
              "(%s the 429 window), %d requests of apilb answered 429"
              % (len(names), took, "inside" if in_window else "after", len(rejected)))
        check(took < 3.0, "the watcher needed %.2fs to see a change" % took)
    finally:
        a.stop()
        fake.stop()


@scenario
def admin_during_start_stop():
    """/metrics and /upstreams asked without pause from the moment the admin
    endpoint listens until apilb has exited, through the watcher's start and
    stop: the admin thread reads the watcher's statistics while the main
    thread starts and frees the watcher. (ThreadSanitizer caught the admin
    thread reading the watcher pointer with no lock while it was being set,
    and apilb stopped the watcher before the admin endpoint.)"""
    d, fake = new_case()
    kc = kubeconfig(d, token_user(d))
    args = ["--kubeconfig", kc, "--upstream", "10.213.0.2:6443", "--health-interval", "300ms",
            "--health-timeout", "250ms"]
    a = Apilb(*args, health="readyz", admin=True, wait=False)
    done = threading.Event()
    answers = {"ok": 0, "watcher": 0}

    def hammer():
        while not done.is_set():
            for path in (b"/metrics", b"/upstreams"):
                try:
                    got = raw_admin(a, b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                                    % path, timeout=2)
                    if got.startswith(b"HTTP/1.1 200"):
                        answers["ok"] += 1
                        if b"apilb_watcher_state" in got:
                            answers["watcher"] += 1
                except OSError:
                    pass  # not listening yet, or gone: apilb is starting or has stopped

    t = None
    try:
        line = a.wait_log(r'admin endpoint listening', 60)
        a.admin_port = int(re.search(r'addr=\S+:(\d+)', line).group(1))
        t = threading.Thread(target=hammer, daemon=True)
        t.start()
        a.wait_log(r'msg="started"', 60)
        a.wait_log(r'apiservers discovered', 20)
        time.sleep(0.5)
        a.signal(signal.SIGTERM)
        rc = a.wait_exit(40)
        done.set()
        t.join(10)
        print("admin during start and stop: %d answers, %d with watcher metrics; exit %d"
              % (answers["ok"], answers["watcher"], rc))
        check(rc == 0, "apilb exited %d (66: a ThreadSanitizer report)" % rc)
        check(answers["watcher"] > 0, "no answer showed the watcher: the test proves nothing")
        a.check_sanitizers()
    finally:
        done.set()
        if a.proc.poll() is None:
            a.stop()
        fake.stop()

V6 = ["fd00:213::2", "fd00:213::3"]


class SetRecorder:
    """Samples the discovered set (GET /upstreams) every 50 ms on a thread:
    what apilb applied over time, to prove a transient set never was."""

    def __init__(self, a):
        self.a = a
        self.seen = []
        self.stop_ = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop_.is_set():
            try:
                got = tuple(discovered(self.a))
            except Exception:  # noqa: BLE001 - a sample lost is no verdict
                got = None
            if got is not None and (not self.seen or self.seen[-1] != got):
                self.seen.append(got)
            time.sleep(0.05)

    def stop(self):
        self.stop_.set()
        self.t.join()
        return self.seen


def v4_slice(ips, zone=None):
    return {"addressType": "IPv4", "endpoints": [
        dict({"addresses": [ip], "conditions": {"ready": True}}, **({"zone": zone} if zone else {}))
        for ip in ips]}


@scenario
def dual_stack():
    """An IPv4 slice and an IPv6 one (kubernetes, kubernetes-v6) make one
    table; an FQDN slice is ignored with a log line; the IPv4 slice deleted
    and re-added one at a time (the reconciler changing its addressType
    does this) never leaves an IPv6-only table behind."""
    d, fake = new_case(IPS[:2] + V6)
    a = start_apilb(fake, kubeconfig(d, token_user(d)), debounce="300ms")
    try:
        t0 = time.time()
        wait_discovered(a, IPS[:2] + V6)
        print("IPv4 + IPv6 slices merged %.2fs after start" % (time.time() - t0))
        slices = sorted(u for u in fake.state().get("slices", []))
        check(slices == ["kubernetes", "kubernetes-v6"], "the fake's slices: %r" % slices)
        a.wait_log(r'apiservers discovered.*upstreams=4 set="10\.213\.0\.2:6443,'
                   r'10\.213\.0\.3:6443,\[fd00:213::2\]:6443,\[fd00:213::3\]:6443"')
        served = []
        while len(served) < 40 and not set(V6) <= set(served):
            served += served_by(fake, a)
        check(set(V6) <= set(served), "no client reached an IPv6 apiserver: %r" % served)
        rec = SetRecorder(a)
        fake.ctl("/slices/kubernetes/delete")
        time.sleep(1.5)  # longer than the debounce: only the hold keeps it out
        fake.ctl("/slices/kubernetes-v4new", v4_slice(IPS[1:3]))
        wait_discovered(a, IPS[1:3] + V6)
        time.sleep(0.5)
        seen = rec.stop()
        check(all(any(ip.startswith("10.") for ip in s) for s in seen),
              "an IPv6-only table was applied: %r" % seen)
        print("IPv4 slice deleted, re-added 1.5 s later: sets applied %r" % (seen,))
        code, st = fake.ctl_status("/slices/names", {"addressType": "FQDN", "endpoints": [
            {"addresses": ["api.example.test"]}]})
        check(code == 200, "FQDN slice: %d %r" % (code, st))
        a.wait_log(r'EndpointSlice of addressType FQDN ignored .*name="names"', 5)
        time.sleep(0.5)
        wait_discovered(a, IPS[1:3] + V6)
    finally:
        a.stop()
        fake.stop()


@scenario
def dual_stack_endpoints():
    """Where slices are forbidden, the Endpoints object lists both families;
    it changes whole, so the IPv6 addresses leaving it are applied after
    the debounce, not held as half of a slice replacement."""
    d, fake = new_case(IPS[:2] + V6)
    fake.ctl("/forbid", {"resources": ["endpointslices"]})
    a = start_apilb(fake, kubeconfig(d, token_user(d)), debounce="500ms")
    try:
        wait_discovered(a, IPS[:2] + V6)
        a.wait_log(r'apiservers discovered.*source=endpoints ')
        t0 = time.time()
        fake.ctl("/members", {"ips": IPS[:2]})
        wait_discovered(a, IPS[:2], 4)  # the hold would be 5 s
        print("IPv6 addresses left the Endpoints object: applied after %.2fs"
              % (time.time() - t0))
        check(not any("replacement in flight" in line for line in a.lines()),
              "an Endpoints change was held as a slice replacement")
    finally:
        a.stop()
        fake.stop()


@scenario
def slice_replaced():
    """One family's slice replaced one at a time, each step 1.5 s apart
    (longer than the debounce): add-then-delete never applies the union of
    the old and new slice, delete-then-add never an empty set; two slices
    that keep disagreeing are applied (as their union) after the hold."""
    more = ["10.213.0.5", "10.213.0.6"]
    d, fake = new_case(IPS + more, members=IPS)
    a = start_apilb(fake, kubeconfig(d, token_user(d)), debounce="300ms")
    try:
        wait_discovered(a, IPS)
        rec = SetRecorder(a)
        fake.ctl("/slices/kubernetes-new", v4_slice(more))
        time.sleep(1.5)
        fake.ctl("/slices/kubernetes/delete")
        wait_discovered(a, more)
        time.sleep(0.2)
        union = tuple(sorted(hostport(ip) for ip in IPS + more))
        check(union not in rec.seen, "add-then-delete: the union was applied: %r" % rec.seen)
        a.wait_log(r'EndpointSlice replacement in flight: holding the current upstreams.*'
                   r'EndpointSlices kubernetes and kubernetes-new \(IPv4\) list different', 1)
        # delete-then-add
        fake.ctl("/slices/kubernetes-new/delete")
        time.sleep(1.5)
        fake.ctl("/slices/kubernetes-newer", v4_slice(IPS[:2]))
        wait_discovered(a, IPS[:2])
        time.sleep(0.5)
        seen = rec.stop()
        want = [tuple(sorted(hostport(ip) for ip in s)) for s in (IPS, more, IPS[:2])]
        check(seen == want, "applied over time %r, expected %r" % (seen, want))
        print("add-then-delete and delete-then-add, 1.5 s apart: applied %r" % (seen,))
        # A writer that splits one family over two slices for good.
        t0 = time.time()
        fake.ctl("/slices/kubernetes-split", v4_slice(more[:1]))
        wait_discovered(a, IPS[:2] + more[:1], 15)
        took = time.time() - t0
        check(took >= 2.5, "the split was applied after %.2fs, before the hold" % took)
        a.wait_log(r'EndpointSlices still disagree: applying what they list', 2)
        print("a lasting split applied after %.2fs (hold 3 s)" % took)
    finally:
        a.stop()
        fake.stop()


@scenario
def zones():
    """endpoints[].zone and hints.forZones reach GET /upstreams; a zone
    change alone is a change; Endpoints (v1) carry none."""
    d, fake = new_case()
    fake.ctl("/members", {"ips": IPS, "zones": {IPS[0]: "zone-a", IPS[1]: "zone-b"},
                          "hints": True})
    a = start_apilb(fake, kubeconfig(d, token_user(d)))
    try:
        wait_discovered(a, IPS)
        end = time.time() + 10
        while True:
            u = upstreams(a)
            got = {k: (v.get("zone", "absent"), v.get("hints", "absent")) for k, v in u.items()
                   if "discovered" in v["sources"]}
            want = {"10.213.0.2:6443": ("zone-a", {"for_zones": ["zone-a"]}),
                    "10.213.0.3:6443": ("zone-b", {"for_zones": ["zone-b"]}),
                    "10.213.0.4:6443": (None, None)}
            if got == want or time.time() > end:
                break
            time.sleep(0.1)
        check(got == want, "zones in /upstreams: %r" % got)
        p = subprocess.run([APILB, "status", "--admin", "127.0.0.1:%d" % a.admin_port],
                           capture_output=True, text=True, timeout=30)
        zone_of = {l.split()[0]: l.split()[-1] for l in p.stdout.splitlines()[1:4]}
        check(p.returncode == 0 and zone_of.get("10.213.0.2:6443") == "zone-a" and
              zone_of.get("10.213.0.4:6443") == "-", "apilb status zones: %s" % p.stdout)
        a.wait_log(r'apiservers discovered.*zones="10\.213\.0\.2:6443=zone-a,'
                   r'10\.213\.0\.3:6443=zone-b"')
        check(metric(a, 'apilb_upstream_zone_info{upstream="10.213.0.2:6443",zone="zone-a"}')
              == 1, "no zone metric")
        code, text = a.admin("/metrics")
        check(text.count("apilb_upstream_zone_info{") == 2, "zone samples: %r"
              % [l for l in text.splitlines() if l.startswith("apilb_upstream_zone_info")])
        p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                           text=True)
        check(p.returncode == 0, "promtool rejects the zone metric: %s" % p.stderr)
        fake.ctl("/members", {"ips": IPS, "zones": {IPS[0]: "zone-c"}, "hints": False})
        end = time.time() + 10
        while time.time() < end:
            z = {k: (v["zone"], v["hints"]) for k, v in upstreams(a).items()}
            if z.get("10.213.0.2:6443") == ("zone-c", None):
                break
            time.sleep(0.1)
        check(z.get("10.213.0.2:6443") == ("zone-c", None) and
              z.get("10.213.0.3:6443") == (None, None), "zone change not applied: %r" % z)
        # What the API refuses, the fake refuses: nothing changes in apilb.
        for bad in ("127.0.0.1", "169.254.0.1"):
            code, st = fake.ctl_status("/members", {"ips": IPS[:1] + [bad]})
            check(code == 422 and st["reason"] == "Invalid" and bad in st["message"],
                  "the fake took %s: %d %r" % (bad, code, st))
        time.sleep(0.5)
        check(discovered(a) == sorted(hostport(ip) for ip in IPS), "a refused write applied")
    finally:
        a.stop()
        fake.stop()


# -- each apiserver its own certificate (issue 19 part 1) --------------------

def watcher_errors(a, start=0):
    """The watcher's last request failures, for a failure message."""
    bad = [l for l in a.lines()[start:] if re.search(
        r'apiserver request failed|watch connection failed|LIST failed', l)]
    return "\n".join(bad[-3:]) or "(no request failed)"


def served_by_apiserver(fake, ip):
    """Requests of the watcher (LIST or WATCH) that the instance on ip served."""
    return [r for r in fake.state()["requests"]
            if r[0] == ip and "/endpoint" in r[1] and r[2] is not None]


def wait_served_by(fake, a, ip, deadline):
    """Connects through apilb until one lands on ip; fails at deadline."""
    seen = []
    while time.time() < deadline:
        seen += served_by(fake, a)
        if ip in seen:
            return
    raise Fail("no new connection landed on %s in time: %r" % (ip, seen))


@scenario
def origin_lost(certs="kubeadm"):
    """kubeadm's shape: each apiserver has its own certificate (its own
    address and the kubernetes names), the kubeconfig names the first one by
    IP. Once that one is killed, discovery goes on through the others: its
    removal and an apiserver added afterwards reach new connections within
    5 s each."""
    d, fake = new_case(IPS + ["10.213.0.5"], members=IPS, certs=certs)
    a = start_apilb(fake, kubeconfig(d, token_user(d)))
    try:
        wait_discovered(a, IPS)
        mark = len(a.lines())
        fake.ctl("/instance/10.213.0.2/crash")
        end = time.time() + 10
        while "10.213.0.2" in fake.state()["members"]:  # its lease expires (2 s)
            check(time.time() < end, "the fake never dropped the crashed apiserver")
            time.sleep(0.05)
        t0 = time.time()
        try:
            wait_discovered(a, IPS[1:], 5)
        except Fail as e:
            raise Fail("%s; the watcher's last errors:\n%s" % (e, watcher_errors(a, mark)))
        print("removal of the kubeconfig's apiserver seen %.2fs after its lease expired"
              % (time.time() - t0))
        fake.ctl("/instance/10.213.0.5/ready")
        t0 = time.time()
        try:
            wait_discovered(a, IPS[1:] + ["10.213.0.5"], 5)
        except Fail as e:
            raise Fail("%s; the watcher's last errors:\n%s" % (e, watcher_errors(a, mark)))
        wait_served_by(fake, a, "10.213.0.5", t0 + 5)
        print("apiserver added after the loss reached new connections in %.2fs"
              % (time.time() - t0))
        check(served_by_apiserver(fake, "10.213.0.3") or served_by_apiserver(fake, "10.213.0.4"),
              "no survivor served the watcher")
        a.wait_log(r'apiserver certificate verified" upstream=10\.213\.0\.(3|4):6443 '
                   r'tls_name=kubernetes because=kubernetes', 1)
        a.wait_log(r'apiserver certificate verified" upstream=10\.213\.0\.2:6443 '
                   r'tls_name=10\.213\.0\.2 because=kubeconfig-server', 1)
        n = len([l for l in a.lines() if "apiserver certificate verified" in l])
        check(n <= 4, "the verified name was logged %d times for 4 apiservers" % n)
    finally:
        a.stop()
        fake.stop()


@scenario
def origin_lost_k3s():
    """origin_lost with k3s's certificates (its own addresses, 127.0.0.1,
    localhost and the kubernetes names)."""
    origin_lost("k3s")


@scenario
def tls_name_wins():
    """tls-server-name, when set, is verified on every apiserver, even where
    another name would pass: the kubeconfig's own apiserver (its address and
    kubernetes in its certificate, not the tls-server-name) is never used by
    the watcher, the others (which carry it) are."""
    kubeadm_2 = ("DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,"
                 "DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1,IP:10.213.0.2")
    d, fake = new_case(certs="kubeadm", extra_sans="DNS:apiserver.internal",
                       own={"10.213.0.2": kubeadm_2})
    kc = kubeconfig(d, token_user(d), tls_server_name="apiserver.internal")
    a = start_apilb(fake, kc, "--watch-timeout", "1s", seeds=("10.213.0.3:6443",))
    try:
        wait_discovered(a, IPS)
        a.wait_log(r'(request failed|connection failed)" source=\S+ upstream=10\.213\.0\.2:6443 '
                   r'.*apiserver\.internal', 20)
        fake.ctl("/members", {"ips": IPS[1:]})
        wait_discovered(a, IPS[1:])
        check(not served_by_apiserver(fake, "10.213.0.2"),
              "the apiserver without the tls-server-name served the watcher")
        verified = [l for l in a.lines() if "apiserver certificate verified" in l]
        check(verified and all("tls_name=apiserver.internal because=tls-server-name" in l
                               for l in verified), "other names verified:\n" + "\n".join(verified))
    finally:
        a.stop()
        fake.stop()


@scenario
def dns_server():
    """The kubeconfig names a DNS name (a load balancer's) that no apiserver
    certificate carries and nothing here resolves: the watcher dials the
    addresses it knows (the seed, then discovery) and verifies kubernetes."""
    d, fake = new_case(certs="kubeadm")
    kc = kubeconfig(d, token_user(d), server="https://api.example.test:6443")
    a = start_apilb(fake, kc)
    try:
        try:
            wait_discovered(a, IPS)
        except Fail as e:
            raise Fail("%s; the watcher's last errors:\n%s" % (e, watcher_errors(a)))
        fake.ctl("/members", {"ips": IPS[:2]})
        wait_discovered(a, IPS[:2], 5)
        a.wait_log(r'apiserver certificate verified" upstream=10\.213\.0\.2:6443 '
                   r'tls_name=kubernetes because=kubernetes', 1)
    finally:
        a.stop()
        fake.stop()


@scenario
def lb_name_verified():
    """Certificates that carry only the kubeconfig's DNS name (a load
    balancer's, put in every apiserver certificate; no kubernetes, no
    address): the last fallback verifies that name on every address dialled.
    (TCP health checks: the readyz checks verify kubernetes.)"""
    d, fake = new_case(own={ip: "DNS:api.example.test" for ip in IPS})
    kc = kubeconfig(d, token_user(d), server="https://api.example.test:6443")
    a = start_apilb(fake, kc, health="tcp")
    try:
        try:
            wait_discovered(a, IPS)
        except Fail as e:
            raise Fail("%s; the watcher's last errors:\n%s" % (e, watcher_errors(a)))
        fake.ctl("/members", {"ips": IPS[1:]})
        wait_discovered(a, IPS[1:], 5)
        a.wait_log(r'apiserver certificate verified" upstream=10\.213\.0\.\d:6443 '
                   r'tls_name=api\.example\.test because=kubeconfig-server', 1)
    finally:
        a.stop()
        fake.stop()


@scenario
def foreign_cert_refused():
    """Verification is really on: an apiserver whose certificate (from the
    cluster CA) names neither kubernetes, nor its address, nor the
    kubeconfig's server never serves the watcher. (TCP health checks, so the
    proxy keeps it in rotation and the watcher does dial it.)"""
    d, fake = new_case(certs="kubeadm", own={"10.213.0.3": "DNS:other.example.test"})
    a = start_apilb(fake, kubeconfig(d, token_user(d)), "--watch-timeout", "1s", health="tcp")
    try:
        wait_discovered(a, IPS)
        line = a.wait_log(r'(request failed|connection failed)" source=\S+ '
                          r'upstream=10\.213\.0\.3:6443 ', 20)
        check("certificate verified for none of kubernetes, 10.213.0.3, 10.213.0.2" in line,
              "not refused for its names: " + line)
        fake.ctl("/members", {"ips": IPS[:2]})
        wait_discovered(a, IPS[:2])
        check(not served_by_apiserver(fake, "10.213.0.3"),
              "the apiserver with a foreign certificate served the watcher")
        check(not [l for l in a.lines() if re.search(
            r'certificate verified" upstream=10\.213\.0\.3', l)], "10.213.0.3 was verified")
    finally:
        a.stop()
        fake.stop()


@scenario
def own_address_verified():
    """A certificate without the kubernetes names but with the apiserver's
    own address (as the cluster publishes it) is verified for that address,
    and only that apiserver's. (TCP health checks: the readyz checks verify
    kubernetes and would keep the watcher away from it.)"""
    d, fake = new_case(certs="kubeadm", own={"10.213.0.3": "IP:10.213.0.3"})
    a = start_apilb(fake, kubeconfig(d, token_user(d)), "--watch-timeout", "1s", health="tcp")
    try:
        wait_discovered(a, IPS)
        end = time.time() + 20
        while not served_by_apiserver(fake, "10.213.0.3"):
            check(time.time() < end, "10.213.0.3 never served the watcher; its last errors:\n"
                  + watcher_errors(a))
            time.sleep(0.2)
        a.wait_log(r'apiserver certificate verified" upstream=10\.213\.0\.3:6443 '
                   r'tls_name=10\.213\.0\.3 because=own-address', 1)
        fake.ctl("/members", {"ips": IPS[1:]})
        wait_discovered(a, IPS[1:])
        n = len([l for l in a.lines()
                 if re.search(r'certificate verified" upstream=10\.213\.0\.3', l)])
        check(n == 1, "the name verified on 10.213.0.3 was logged %d times" % n)
    finally:
        a.stop()
        fake.stop()

# -- answers that would build huge JSON trees (audit F9) ----------------------

def memory_limit(pid, limit):
    """Puts pid in a new memory cgroup limited to limit bytes (v1 or v2);
    returns its directory (remove it after the process is gone)."""
    base = "/sys/fs/cgroup/memory" if os.path.isdir("/sys/fs/cgroup/memory") else \
        "/sys/fs/cgroup" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else None
    if base is None:
        raise Fail("no memory cgroup controller")
    cg = os.path.join(base, "apilb-test-%d" % os.getpid())
    os.mkdir(cg)
    with open(os.path.join(cg, "memory.max" if base == "/sys/fs/cgroup"
                           else "memory.limit_in_bytes"), "w") as f:
        f.write(str(limit))
    with open(os.path.join(cg, "cgroup.procs"), "w") as f:
        f.write(str(pid))
    return cg


@scenario
def hostile_answers():
    """LIST answers and watch events of nearly 8 MiB whose JSON trees would be
    many times that ([[],[],...], nesting a million deep, a slice of 100k
    endpoints), under the chart's memory limit (128 Mi, a cgroup): apilb
    refuses each with a clear error, keeps proxying, and follows the cluster
    again once its answers are sane. One apilb per shape, so the watcher's
    backoff (which keeps growing through 2 minutes of failures) stays short."""
    sanitized = bool(os.environ.get("APILB_SANITIZED"))
    d, fake = new_case()
    kc = kubeconfig(d, token_user(d))
    if sanitized:
        print("sanitizer build: no memory cap (its quarantine and shadow memory exceed it)")
    members = IPS
    try:
        for shape in ("wide", "deep", "many"):
            a = start_apilb(fake, kc)
            cg = None
            try:
                wait_discovered(a, members)
                if not sanitized:
                    cg = memory_limit(a.proc.pid, 128 << 20)
                mark = len(a.lines())
                fake.ctl("/fault", {"kind": "hostile", "shape": shape})
                ev = a.wait_log(r'watch event refused', 30, start=mark)
                ls = a.wait_log(r'LIST answer refused', 30, start=mark)
                check(a.proc.poll() is None, "apilb died (%s)" % a.proc.returncode)
                check(len(set(served_by(fake, a, 6))) >= 1, "no longer proxying")
                fake.ctl("/fault", {"kind": "hostile", "on": False})
                members = IPS[:2] if members == IPS else IPS
                fake.ctl("/members", {"ips": members})
                wait_discovered(a, members, 20)
                with open("/proc/%d/status" % a.proc.pid) as f:
                    peak = [l.split()[1] for l in f if l.startswith("VmHWM")][0]
                print("%s: %s | %s; peak RSS %s KiB%s"
                      % (shape, re.search(r'err="[^"]*"', ev).group(0),
                         re.search(r'err="[^"]*"', ls).group(0), peak,
                         "" if sanitized else " (limit 131072)"))
            except Fail as e:
                if a.proc.poll() is not None:
                    raise Fail("%s: %s; apilb exited %s%s" % (
                        shape, e, a.proc.returncode, " (killed: out of memory)"
                        if a.proc.returncode == -signal.SIGKILL else ""))
                raise
            finally:
                fake.ctl("/fault", {"kind": "hostile", "on": False})
                if a.proc.poll() is None:
                    a.stop()
                if cg is not None:
                    os.rmdir(cg)
    finally:
        fake.stop()


@scenario
def set_over_bound():
    """A discovered set larger than the address bound (1024) is refused whole,
    with a log line naming its size and the bound: the current upstreams stay,
    never a set cut to fit. The watcher goes on: a later set is applied."""
    d, fake = new_case()
    # The two slices disagree with "kubernetes" (a replacement in flight to
    # the watcher), so a set is applied only after a hold of 10 debounces,
    # 3 s: watched for 5 s, the refused set must stay unapplied past it.
    a = start_apilb(fake, kubeconfig(d, token_user(d)), debounce="300ms")
    try:
        wait_discovered(a, IPS)
        many = ["10.213.%d.%d" % (1 + i // 250, 1 + i % 250) for i in range(1200)]
        fake.ctl("/slices/kubernetes-a", v4_slice(many[:600]))
        fake.ctl("/slices/kubernetes-b", v4_slice(many[600:]))
        end = time.time() + 5
        line = None
        while time.time() < end:
            line = line or next((l for l in a.lines() if "set refused" in l), None)
            got = discovered(a)
            check(got == sorted(hostport(ip) for ip in IPS),
                  "apilb applied %d of the 1203 addresses the cluster lists (cut to fit), "
                  "expected the 3 it had" % len(got))
            time.sleep(0.1)
        check(line is not None and "addresses=1203" in line and "max=1024" in line,
              "no log line naming the 1203 addresses and the bound 1024: %r" % line)
        print("refused: %s" % line)
        fake.ctl("/slices/kubernetes-a/delete")
        fake.ctl("/slices/kubernetes-b/delete")
        fake.ctl("/members", {"ips": IPS[:2]})
        wait_discovered(a, IPS[:2])
    finally:
        a.stop()
        fake.stop()


if __name__ == "__main__":
    run()
