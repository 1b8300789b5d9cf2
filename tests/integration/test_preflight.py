# SPDX-License-Identifier: Apache-2.0
"""`apilb preflight` against the fake kube-apiserver (tests/fakes): one
scenario per check that fails, each asserting the exact line printed and a
non-zero exit, and the all-good case exiting 0.

Apiservers must not be loopback addresses (the API refuses them in
endpoints), so every scenario runs in a private network namespace
(unshare -n) whose lo carries 10.213.0.2-9. An apiserver with another
certificate (one without 127.0.0.1, or from another CA) is a second fake
process on its own address, listed by the first one's --members."""

import functools
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import harness
from harness import APILB, Apilb, _children, apiserver_netns, check, run, tmpdir

HERE = os.path.dirname(os.path.abspath(__file__))
FAKES = os.path.join(HERE, "..", "fakes")

apiserver_netns(__file__)

TOKEN = "token-one"


class Cluster:
    """A fake apiserver process (one instance per address in ips) serving
    cert/key, which accepts TOKEN; ctl() drives its control API."""

    def __init__(self, d, ips, cert="server.pem", key="server.key", members=None, extra=()):
        self.ready = os.path.join(d, "ready-%s.json" % ips[0])
        cmd = [sys.executable, os.path.join(FAKES, "fake_apiserver.py"),
               "--cert", os.path.join(d, cert), "--key", os.path.join(d, key),
               "--token-file", os.path.join(d, "token"), "--ready-file", self.ready]
        cmd += [a for ip in ips for a in ("--listen", ("[%s]:6443" if ":" in ip else "%s:6443")
                                          % ip)]
        if members:
            cmd += ["--members", ",".join(members)]
        cmd += list(extra)
        self.proc = subprocess.Popen(cmd)
        _children.append(self.proc)
        end = time.time() + 10
        while not os.path.exists(self.ready):
            check(time.time() < end and self.proc.poll() is None, "the fake did not start")
            time.sleep(0.05)
        with open(self.ready) as f:
            self.control = json.load(f)["control"]

    def ctl(self, path, body):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.control, path),
                                     data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            check(r.status == 200, "control %s answered %d" % (path, r.status))


def certs():
    """The cluster CA, its serving certificate for every test address, and a
    second CA with a certificate of the same names (ca2.pem, server2.pem)."""
    d = tmpdir()
    for how in ([], ["rotate"]):
        subprocess.run(["bash", os.path.join(FAKES, "mkcerts.sh"), d, *how], check=True)
    with open(os.path.join(d, "token"), "w") as f:
        f.write(TOKEN + "\n")
    return d


def own_cert(d, name, ip):
    """A kubeadm-shaped serving certificate from the cluster CA: the
    kubernetes names and the apiserver's own address, not 127.0.0.1."""
    sans = ("DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,"
            "DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1,IP:%s" % ip)
    ext, csr = os.path.join(d, name + ".ext"), os.path.join(d, name + ".csr")
    with open(ext, "w") as f:
        f.write("subjectAltName=%s\n" % sans)
    q = {"check": True, "capture_output": True}
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj",
                    "/CN=kube-apiserver", "-keyout", os.path.join(d, name + ".key"),
                    "-out", csr], **q)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", os.path.join(d, "ca.pem"),
                    "-CAkey", os.path.join(d, "ca.key"), "-CAcreateserial", "-days", "1",
                    "-extfile", ext, "-out", os.path.join(d, name + ".pem")], **q)
    return name + ".pem", name + ".key"


def write_kubeconfig(d, name, server, ca, user="", tls_server_name=None):
    extra = "    tls-server-name: %s\n" % tls_server_name if tls_server_name else ""
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write("apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                "clusters:\n- name: c\n  cluster:\n    server: %s\n"
                "    certificate-authority: %s\n%s"
                "users:\n- name: u\n  user:\n%s"
                "contexts:\n- name: c\n  context: {cluster: c, user: u}\n"
                % (server, ca, extra, user or "    {}\n"))
    return path


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Case:
    """A scenario's files: certificates, apilb's kubeconfig (token, server
    10.213.0.2) and a kubelet kubeconfig pointing at apilb's listener."""

    def __init__(self):
        self.d = certs()
        self.port = free_port()
        self.listen = "127.0.0.1:%d" % self.port
        self.kc = write_kubeconfig(self.d, "apilb.conf", "https://10.213.0.2:6443", "ca.pem",
                                   "    token: %s\n" % TOKEN)
        self.kubelet = write_kubeconfig(self.d, "kubelet.conf", "https://%s" % self.listen,
                                        "ca.pem")

    def preflight(self, *args, listen=None, kubeconfig=True, kubelet=True, env=None, exe=APILB):
        cmd = [exe, "preflight", "--listen", listen or self.listen,
               "--upstream", "10.213.0.2:6443"]
        if kubeconfig:
            cmd += ["--kubeconfig", self.kc]
        if kubelet:
            cmd += ["--kubelet-kubeconfig", self.kubelet]
        env = dict({k: v for k, v in os.environ.items()
                    if k == "PATH" or k.startswith(("ASAN_", "UBSAN_", "LSAN_"))}, **(env or {}))
        p = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=120,
                           env=env)
        print("$ apilb preflight ... (exit %d)\n%s%s" % (p.returncode, p.stdout, p.stderr))
        check("Sanitizer" not in p.stderr and "runtime error" not in p.stderr,
              "sanitizer report:\n" + p.stderr)
        return p.returncode, p.stdout.splitlines()


def scenario(f):
    """harness.scenario, and every process f started is killed (by PID) when
    it ends: the next scenario's apiservers bind the same addresses."""
    @functools.wraps(f)
    def wrapped():
        try:
            f()
        finally:
            for p in _children:
                if p.poll() is None:
                    p.kill()
                    p.wait()
    return harness.scenario(wrapped)


def expect(lines, *want):
    for w in want:
        check(w in lines, "missing line %r in:\n%s" % (w, "\n".join(lines)))


def expect_start(lines, start, what):
    check(any(l.startswith(start) for l in lines), "no line for %s (%r...) in:\n%s"
          % (what, start, "\n".join(lines)))


def fails(rc, lines):
    check(rc == 1, "preflight exited %d with a failed check, want 1" % rc)
    check(any(l.startswith("preflight: ") and not l.endswith(" 0 failed") for l in lines),
          "no summary counting the failure")


def ok_lines(c, ips):
    lines = ["ok   listen %s: free" % c.listen,
             "ok   --upstream: 1 apiserver (10.213.0.2:6443)",
             "ok   credentials: --kubeconfig=%s: server https://10.213.0.2:6443" % c.kc,
             "ok   discovery: the cluster lists %d apiservers (%s)"
             % (len(ips), ", ".join("%s:6443" % ip for ip in ips))]
    lines += ["ok   tls %s:6443: trusted by the cluster CA (--kubeconfig), covers 127.0.0.1" % ip
              for ip in ips]
    lines += ["ok   rbac %s %s in default: allowed" % (v, r)
              for r in ("endpointslices.discovery.k8s.io", "endpoints")
              for v in ("list", "watch")]
    lines += ["ok   readyz %s:6443: HTTP 200" % ip for ip in ips]
    lines += ["ok   kubelet kubeconfig %s: server https://%s is apilb's listener"
              % (c.kubelet, c.listen),
              "ok   kubelet kubeconfig %s: its CA is the cluster CA (--kubeconfig)" % c.kubelet]
    return lines


@scenario
def all_good():
    """Every check passes: exit 0, and every line says ok."""
    c = Case()
    Cluster(c.d, ["10.213.0.2", "10.213.0.3"])
    rc, lines = c.preflight()
    want = ok_lines(c, ["10.213.0.2", "10.213.0.3"])
    check(lines == want + ["preflight: %d ok, 0 warnings, 0 failed" % len(want)],
          "all-good output differs:\n%s" % "\n".join(lines))
    check(rc == 0, "preflight exited %d with every check ok" % rc)


@scenario
def in_cluster():
    """The pod's service account (a token and ca.crt in --service-account-dir,
    the service address from the environment): the name verified is
    kubernetes.default.svc at every apiserver, and every check passes."""
    c = Case()
    Cluster(c.d, ["10.213.0.2", "10.213.0.3"])
    sa = os.path.join(c.d, "sa")
    os.makedirs(sa)
    with open(os.path.join(sa, "token"), "w") as f:
        f.write(TOKEN + "\n")
    subprocess.run(["cp", os.path.join(c.d, "ca.pem"), os.path.join(sa, "ca.crt")], check=True)
    rc, lines = c.preflight("--in-cluster", "--service-account-dir", sa, kubeconfig=False,
                            env={"KUBERNETES_SERVICE_HOST": "10.213.0.2",
                                 "KUBERNETES_SERVICE_PORT": "6443"})
    want = [l.replace("--kubeconfig=%s: server https://10.213.0.2:6443" % c.kc,
                      "--in-cluster: server https://10.213.0.2:6443 (verified as "
                      "kubernetes.default.svc)").replace("(--kubeconfig)", "(--in-cluster)")
            for l in ok_lines(c, ["10.213.0.2", "10.213.0.3"])]
    check(lines == want + ["preflight: %d ok, 0 warnings, 0 failed" % len(want)],
          "in-cluster output differs:\n%s" % "\n".join(lines))
    check(rc == 0, "preflight exited %d with every check ok" % rc)


def state_file(path, addrs):
    """A state file as apilb writes it (statefile.c: FNV-1a of what precedes the trailer)."""
    text = "# apilb state v1\n" + "".join("upstream %s\n" % a for a in addrs)
    h = 2166136261
    for b in text.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    with open(path, "w") as f:
        f.write(text + "end %d %08x\n" % (len(addrs), h))


@scenario
def dual_stack():
    """A dual-stack cluster publishes one EndpointSlice per family
    (kubernetes, kubernetes-v6): the discovery line has both, and the IPv6
    apiserver's TLS, RBAC routing and readyz work like the IPv4 one's."""
    c = Case()
    Cluster(c.d, ["10.213.0.2", "fd00:213::2"])
    rc, lines = c.preflight()
    want = ok_lines(c, ["10.213.0.2", "fd00:213::2"])
    want = [l.replace("fd00:213::2:6443", "[fd00:213::2]:6443") for l in want]
    check(lines == want + ["preflight: %d ok, 0 warnings, 0 failed" % len(want)],
          "dual-stack output differs:\n%s" % "\n".join(lines))
    check(rc == 0, "preflight exited %d with every check ok" % rc)


@scenario
def static_sources():
    """Without credentials: the seeds, the upstreams file and the state file
    are each read and said, the apiservers of all three are checked
    against --health-ca (a dead one in the state file fails), and no RBAC
    or readyz check runs; an edited state file is a warning."""
    c = Case()
    Cluster(c.d, ["10.213.0.2", "10.213.0.3", "10.213.0.4"])
    ups, st = os.path.join(c.d, "upstreams"), os.path.join(c.d, "state")
    with open(ups, "w") as f:
        f.write("# the control plane\n10.213.0.3:6443\n")
    state_file(st, ["10.213.0.4:6443", "10.213.0.5:6443"])
    rc, lines = c.preflight("--discovery", "off", "--upstreams-file", ups, "--state-file", st,
                            "--health-ca", os.path.join(c.d, "ca.pem"), kubeconfig=False,
                            kubelet=False)
    want = ["ok   listen %s: free" % c.listen,
            "ok   --upstream: 1 apiserver (10.213.0.2:6443)",
            "ok   --upstreams-file: 1 apiserver (10.213.0.3:6443)",
            "ok   --state-file: 2 apiservers (10.213.0.4:6443, 10.213.0.5:6443)"]
    want += ["ok   tls 10.213.0.%d:6443: trusted by the cluster CA (--health-ca), covers "
             "127.0.0.1" % i for i in (2, 3, 4)]
    want.insert(7, "FAIL tls 10.213.0.5:6443: no answer: connect: Connection refused")
    check(lines == want + ["preflight: 7 ok, 0 warnings, 1 failed"],
          "static sources output differs:\n%s" % "\n".join(lines))
    fails(rc, lines)
    with open(st, "a") as f:
        f.write("upstream 10.213.0.6:6443\n")
    rc, lines = c.preflight("--discovery", "off", "--state-file", st, kubeconfig=False,
                            kubelet=False)
    expect(lines, "warn --state-file=%s: apilb would ignore it: line 5: data after the trailer"
           % st, "warn tls 10.213.0.2:6443: covers 127.0.0.1; chain not verified (no cluster CA)")
    check(rc == 0, "warnings alone made preflight exit %d" % rc)


@scenario
def cert_lacks_name():
    """An apiserver whose certificate carries its own address and the
    kubernetes names but not 127.0.0.1 (kubeadm without certSANs) is named,
    with the fix; with tls-server-name: kubernetes the same one passes."""
    c = Case()
    cert, key = own_cert(c.d, "own3", "10.213.0.3")
    Cluster(c.d, ["10.213.0.2"], members=["10.213.0.2", "10.213.0.3"])
    Cluster(c.d, ["10.213.0.3"], cert=cert, key=key)
    rc, lines = c.preflight()
    expect(lines,
           "FAIL tls 10.213.0.3:6443: certificate does not cover 127.0.0.1 (it has "
           "DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, "
           "DNS:kubernetes.default.svc.cluster.local, IP:10.96.0.1, IP:10.213.0.3)",
           "fix  kubelet verifies 127.0.0.1 through apilb and 10.213.0.3:6443 does not carry "
           "it: add 127.0.0.1 to apiServer.certSANs (kubeadm ClusterConfiguration) and "
           "regenerate the apiserver certificates (kubeadm init phase certs apiserver), or set "
           "tls-server-name: kubernetes in the kubelet's kubeconfig",
           "ok   tls 10.213.0.2:6443: trusted by the cluster CA (--kubeconfig), covers 127.0.0.1")
    fails(rc, lines)
    # The second fix: kubelet verifies "kubernetes", which every apiserver carries.
    c.kubelet = write_kubeconfig(c.d, "kubelet-named.conf", "https://%s" % c.listen, "ca.pem",
                                 tls_server_name="kubernetes")
    rc, lines = c.preflight()
    expect(lines, *("ok   tls 10.213.0.%d:6443: trusted by the cluster CA (--kubeconfig), "
                    "covers kubernetes" % i for i in (2, 3)))
    check(rc == 0, "with tls-server-name: kubernetes preflight exited %d" % rc)


@scenario
def ipv6_listener():
    """Listening on [::1] (kubelet: server: https://[::1]:PORT), kubelet
    verifies ::1, which the certificates lack (they carry 127.0.0.1)."""
    c = Case()
    Cluster(c.d, ["10.213.0.2"])
    listen = "[::1]:%d" % c.port
    c.kubelet = write_kubeconfig(c.d, "kubelet6.conf", "https://" + listen, "ca.pem")
    rc, lines = c.preflight(listen=listen)
    expect(lines, "ok   listen %s: free" % listen,
           "ok   kubelet kubeconfig %s: server https://%s is apilb's listener" % (c.kubelet, listen))
    expect_start(lines, "FAIL tls 10.213.0.2:6443: certificate does not cover ::1 (it has DNS:",
                 "the certificate without ::1")
    expect_start(lines, "fix  kubelet verifies ::1 through apilb and 10.213.0.2:6443 does not "
                 "carry it: add ::1 to apiServer.certSANs", "the fix")
    fails(rc, lines)


@scenario
def untrusted_ca():
    """An apiserver whose certificate comes from another CA."""
    c = Case()
    Cluster(c.d, ["10.213.0.2"], members=["10.213.0.2", "10.213.0.4"])
    Cluster(c.d, ["10.213.0.4"], cert="server2.pem", key="server2.key")
    rc, lines = c.preflight()
    expect(lines, "FAIL tls 10.213.0.4:6443: certificate not trusted by the cluster CA "
                  "(--kubeconfig): unable to get local issuer certificate")
    expect_start(lines, "FAIL readyz 10.213.0.4:6443: no answer: ", "its readyz")
    fails(rc, lines)


@scenario
def dead_apiserver():
    """Apiservers the cluster lists that do not answer: one refuses, one
    accepts connections and never speaks TLS (a hung process)."""
    c = Case()
    Cluster(c.d, ["10.213.0.2"], members=["10.213.0.2", "10.213.0.8", "10.213.0.9"])
    hung = socket.socket()
    hung.bind(("10.213.0.8", 6443))
    hung.listen(8)  # the kernel completes connections that nobody accepts
    t0 = time.time()
    rc, lines = c.preflight("--connect-timeout", "500ms", "--health-timeout", "500ms")
    expect(lines, "ok   discovery: the cluster lists 3 apiservers (10.213.0.2:6443, "
                  "10.213.0.8:6443, 10.213.0.9:6443)",
           "FAIL tls 10.213.0.8:6443: no answer: tls handshake: no answer within 1000 ms",
           "FAIL tls 10.213.0.9:6443: no answer: connect: Connection refused")
    expect_start(lines, "FAIL readyz 10.213.0.8:6443: no answer: ", "its readyz")
    expect_start(lines, "FAIL readyz 10.213.0.9:6443: no answer: ", "its readyz")
    fails(rc, lines)
    # Bounded: two waits of 1 s (TLS, readyz) on the hung one, not a hang.
    check(time.time() - t0 < 30, "preflight took %.1fs" % (time.time() - t0))
    hung.close()


@scenario
def listen_taken():
    """The listen port held by another process is named (pid and command),
    and so is one sharing it through SO_REUSEPORT; held by apilb itself it
    is fine."""
    c = Case()
    Cluster(c.d, ["10.213.0.2"])
    holder = socket.socket()
    holder.bind(("127.0.0.1", c.port))
    holder.listen(1)
    with open("/proc/self/comm") as f:
        comm = f.read().strip()
    rc, lines = c.preflight()
    expect(lines, "FAIL listen %s: in use by pid %d (%s): stop it or choose another --listen"
           % (c.listen, os.getpid(), comm))
    fails(rc, lines)
    holder.close()
    # With SO_REUSEPORT (and this user) the bind succeeds, and the kernel
    # would share kubelet's connections with that program.
    sharer = socket.socket()
    sharer.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sharer.bind(("127.0.0.1", c.port))
    sharer.listen(1)
    rc, lines = c.preflight()
    expect(lines, "FAIL listen %s: shared with pid %d (%s): connections would go to it too "
           "(SO_REUSEPORT); stop it or choose another --listen" % (c.listen, os.getpid(), comm))
    fails(rc, lines)
    sharer.close()
    a = Apilb("--upstream", "10.213.0.2:6443")
    try:
        listen = "127.0.0.1:%d" % a.port
        rc, lines = c.preflight(listen=listen, kubelet=False)
        expect(lines, "ok   listen %s: held by apilb itself (pid %d (apilb))"
               % (listen, a.proc.pid))
        check(rc == 0, "preflight beside a running apilb exited %d" % rc)
    finally:
        a.stop()


@scenario
def rbac_denied():
    """apilb's identity may not list EndpointSlices nor watch Endpoints: the
    SelfSubjectAccessReviews say so, and the discovery LIST falls back."""
    c = Case()
    fake = Cluster(c.d, ["10.213.0.2"])
    fake.ctl("/access", {"user": TOKEN, "deny": ["list endpointslices", "watch endpoints"]})
    rc, lines = c.preflight()
    expect(lines,
           "FAIL rbac list endpointslices.discovery.k8s.io in default: denied",
           "ok   rbac watch endpointslices.discovery.k8s.io in default: allowed",
           "ok   rbac list endpoints in default: allowed",
           "FAIL rbac watch endpoints in default: denied",
           "fix  grant apilb's identity get, list and watch on endpointslices "
           "(discovery.k8s.io) and endpoints in namespace default (the chart's Role; "
           "docs/security.md)",
           'warn discovery: EndpointSlices: HTTP 403: endpointslices is forbidden: User "test" '
           'cannot list resource "endpointslices" in API group "discovery.k8s.io" in the '
           'namespace "default": apilb falls back to Endpoints',
           "ok   discovery: the cluster lists 1 apiserver (10.213.0.2:6443)")
    fails(rc, lines)


@scenario
def rbac_nodes():
    """--prefer zone --node-name without --zone: preflight asks for `get
    nodes` (cluster-scoped), allowed, then denied with the fix."""
    c = Case()
    fake = Cluster(c.d, ["10.213.0.2"])
    rc, lines = c.preflight("--prefer", "zone", "--node-name", "node-1")
    expect(lines, "ok   rbac get nodes: allowed (--node-name node-1)")
    rc, lines = c.preflight("--prefer", "zone", "--zone", "z1", "--node-name", "node-1")
    check(not [x for x in lines if "get nodes" in x], "asked with --zone: %r" % lines)
    fake.ctl("/access", {"user": TOKEN, "deny": ["get nodes"]})
    rc, lines = c.preflight("--prefer", "zone", "--node-name", "node-1")
    expect(lines, "FAIL rbac get nodes: denied",
           "fix  grant apilb's identity get on nodes (the chart's ClusterRole with prefer=zone "
           "and no zone), or give --zone; without it the node has no zone (docs/zones.md)")
    fails(rc, lines)


@scenario
def readyz_failing():
    """An apiserver that answers /readyz with 500 is named with what failed."""
    c = Case()
    fake = Cluster(c.d, ["10.213.0.2", "10.213.0.3"])
    fake.ctl("/instance/10.213.0.3/unready", {})
    rc, lines = c.preflight()
    expect(lines, "ok   readyz 10.213.0.2:6443: HTTP 200",
           "FAIL readyz 10.213.0.3:6443: HTTP 500 (failed: shutdown)")
    fails(rc, lines)


@scenario
def anonymous_off():
    """A hardened cluster (anonymous auth off: anonymous /readyz is 401):
    the readyz check presents apilb's credentials and gets the truth."""
    c = Case()
    Cluster(c.d, ["10.213.0.2", "10.213.0.3"], extra=("--anonymous-auth", "false"))
    anon = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert",
                           os.path.join(c.d, "ca.pem"), "https://10.213.0.2:6443/readyz"],
                          capture_output=True, text=True, timeout=10).stdout
    check(anon == "401", "anonymous /readyz answered %r, not 401: the case proves nothing" % anon)
    rc, lines = c.preflight()
    expect(lines, "ok   readyz 10.213.0.2:6443: HTTP 200", "ok   readyz 10.213.0.3:6443: HTTP 200")
    check(rc == 0, "preflight exited %d against a cluster without anonymous auth" % rc)


@scenario
def kubelet_elsewhere():
    """The kubelet's kubeconfig still names an apiserver, and trusts another
    CA: both said, with what to set."""
    c = Case()
    Cluster(c.d, ["10.213.0.2"])
    c.kubelet = write_kubeconfig(c.d, "kubelet-old.conf", "https://10.213.0.2:6443", "ca2.pem")
    rc, lines = c.preflight()
    expect(lines,
           "FAIL kubelet kubeconfig %s: server https://10.213.0.2:6443 is not apilb's listener; "
           "set server: https://%s" % (c.kubelet, c.listen),
           "FAIL kubelet kubeconfig %s: its CA is not the cluster CA apilb uses (--kubeconfig)"
           % c.kubelet)
    fails(rc, lines)


@scenario
def bad_input():
    """A missing kubeconfig, an unreadable upstreams file, a kubelet
    kubeconfig that is not YAML and a missing discovery module are each one
    clear line, never a crash."""
    c = Case()
    garbage = os.path.join(c.d, "garbage.conf")
    with open(garbage, "w") as f:
        f.write("clusters: [\n")
    rc, lines = c.preflight("--kubelet-kubeconfig", garbage, "--upstreams-file", c.d,
                            "--kubeconfig", "/nonexistent/kubeconfig", kubeconfig=False,
                            kubelet=False)
    expect(lines, "FAIL credentials: --kubeconfig=/nonexistent/kubeconfig: cannot read: "
                  "No such file or directory")
    expect_start(lines, "FAIL --upstreams-file=%s: " % c.d, "the unreadable upstreams file")
    expect_start(lines, "FAIL --kubelet-kubeconfig=%s: " % garbage, "the kubeconfig that is not "
                 "YAML")
    fails(rc, lines)
    # A copy of the executable away from its modules: the API checks say
    # what is missing, the others still run.
    exe = os.path.join(c.d, "apilb")
    subprocess.run(["cp", APILB, exe], check=True)
    rc, lines = c.preflight(exe=exe)
    if any(l.startswith("ok   credentials: ") for l in lines):
        print("the modules are installed (APILB_MODULE_DIR): the missing-module case does not "
              "apply")
        return
    expect_start(lines, "FAIL discovery module: apilb-discovery.so not found in %s or " % c.d,
                 "the missing module")
    expect(lines, "ok   listen %s: free" % c.listen)
    fails(rc, lines)


if __name__ == "__main__":
    run()
