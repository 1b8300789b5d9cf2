# SPDX-License-Identifier: Apache-2.0
"""--health-auth against the fake kube-apiserver with anonymous auth off
(--anonymous-auth false: anonymous /readyz answers 401, and only an
authenticated caller learns that etcd is gone): anonymous checks (none) take
the 401 for alive; with kubeconfig the checks present the kubeconfig's token
or client certificate, follow its rotation, and /readyz tells the truth.

Runs in a private network namespace, like test_watch.py (whose fake
apiserver helpers it uses)."""

import os
import re
import ssl
import time
import urllib.error
import urllib.request

import harness

harness.reexec_in_netns(__file__)

import test_watch as tw  # noqa: E402  (sets the namespace's addresses up)
from harness import check, run, scenario  # noqa: E402

tw.harness_apilb = lambda: harness.APILB

FAKES = tw.FAKES


def all_health(a, want, timeout=8.0):
    end = time.time() + timeout
    got = None
    while time.time() < end:
        got = tw.health_of(a)
        if got and set(got.values()) == {want}:
            return got
        time.sleep(0.1)
    check(False, "not all %s within %.0fs: %r" % (want, timeout, got))


def readyz_requests(fake):
    """(instance, identity) of the /readyz requests the fake saw lately."""
    return [(ip, who) for ip, path, who in fake.state()["requests"] if path.startswith("/readyz")]


def start(fake, kc, *extra):
    return tw.start_apilb(fake, kc, *extra)


def readyz_direct(ip, ca, token=None):
    """(status, body) of GET /readyz at the apiserver on ip, with a real TLS
    client verifying the cluster CA, anonymous or with a bearer token."""
    ctx = ssl.create_default_context(cafile=ca)
    req = urllib.request.Request("https://%s:6443/readyz" % ip)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def checks_of(a, result):
    """{upstream: apilb_upstream_health_checks_total{result=...}} from /metrics."""
    _, text = a.admin("/metrics")
    return {m.group(1): int(m.group(2)) for m in re.finditer(
        r'^apilb_upstream_health_checks_total\{upstream="([^"]+)",result="%s"\} (\d+)$' % result,
        text, re.M)}


@scenario
def none_hides_dead_etcd():
    """--health-auth none (the default) on a cluster with anonymous auth off:
    the behaviour of the default, unchanged since before --health-auth (so it
    passes on a binary older than that option, by design). etcd really dies
    (an authenticated GET /readyz answers 500 with [-]etcd), apilb's
    anonymous checks get 401 and go on concluding "alive" after it (each
    upstream's successful checks grow, no failure is counted), so a dead etcd
    goes unseen (docs/health.md says so). The probe path is exactly /readyz.
    Fails on a binary that takes 401 for a failure, or whose checks stop."""
    d, fake = tw.new_case(extra=("--anonymous-auth", "false"))
    a = start(fake, tw.kubeconfig(d, tw.token_user(d)))
    try:
        tw.wait_discovered(a, tw.IPS)
        all_health(a, "healthy")
        ok0, failed0 = checks_of(a, "success"), checks_of(a, "failure")
        fake.ctl("/etcd", {"ok": False})
        for ip in tw.IPS:
            code, body = readyz_direct(ip, fake.ca, "token-one")
            check(code == 500 and "[-]etcd failed" in body,
                  "authenticated /readyz of %s with etcd down: %d %r" % (ip, code, body[:80]))
            code, _ = readyz_direct(ip, fake.ca)
            check(code == 401, "anonymous /readyz of %s: %d" % (ip, code))
        # Three more concluded checks each (--fall is 2), waited for, not slept.
        end, ok = time.time() + 10, ok0
        while time.time() < end:
            ok = checks_of(a, "success")
            if all(ok.get(u, 0) >= ok0.get(u, 0) + 3 for u in ok0):
                break
            time.sleep(0.2)
        check(ok0 and all(ok.get(u, 0) >= ok0.get(u, 0) + 3 for u in ok0),
              "successful checks after etcd died: %r, before: %r" % (ok, ok0))
        check(checks_of(a, "failure") == failed0,
              "failed checks after etcd died: %r, before: %r" % (checks_of(a, "failure"), failed0))
        check(set(tw.health_of(a).values()) == {"healthy"},
              "anonymous checks saw the dead etcd: %r" % tw.health_of(a))
        paths = {p for _, p, who in fake.state()["requests"] if "readyz" in p and who is None}
        check(paths == {"/readyz"}, "apilb's probe paths: %r" % paths)
        check(all(who is None for _, who in readyz_requests(fake)
                  if who != "token:en-one"), "checks were not anonymous")
        print("etcd down (authenticated /readyz: 500, anonymous: 401); apilb's checks since: "
              "%s successes, 0 failures; all healthy: the documented limit" %
              {u: ok[u] - ok0[u] for u in ok0})
    finally:
        a.stop()
        fake.stop()


@scenario
def token():
    """--health-auth kubeconfig with a token user: checks authenticate, a
    dead etcd makes every apiserver unhealthy (HTTP 500), a live one healthy
    again; a token the apiserver refuses is a failure naming the credentials,
    and the rotated token (projected-token symlink swap) is followed."""
    d, fake = tw.new_case(extra=("--anonymous-auth", "false"))
    a = start(fake, tw.kubeconfig(d, tw.token_user(d)), "--health-auth", "kubeconfig")
    try:
        a.wait_log(r'health checks present the discovery credentials.*token=yes')
        tw.wait_discovered(a, tw.IPS)
        all_health(a, "healthy")
        who = {w for _, w in readyz_requests(fake)}
        check(who and all(w and w.startswith("token:") for w in who), "identities: %r" % who)
        mark = len(a.lines())
        fake.ctl("/etcd", {"ok": False})
        all_health(a, "unhealthy")
        line = a.wait_log(r'to=unhealthy reason="readyz: HTTP 500"', 2, start=mark)
        print("etcd down: %s" % re.search(r'upstream=\S+', line).group(0))
        fake.ctl("/etcd", {"ok": True})
        all_health(a, "healthy")
        # The apiserver now wants another token: apilb's is refused.
        mark = len(a.lines())
        with open(fake.token_file, "w") as f:
            f.write("token-two\n")
        all_health(a, "unhealthy")
        line = a.wait_log(r'to=unhealthy reason="readyz: HTTP 401: the apiserver refused', 2,
                          start=mark)
        tw.rotate_token(os.path.join(d, "sa"), "token-two")
        a.wait_log(r'health checks present the rotated discovery credentials', 15, start=mark)
        all_health(a, "healthy")
        print("rotated token followed")
    finally:
        a.stop()
        fake.stop()


@scenario
def client_cert():
    """--health-auth kubeconfig with a client-certificate user (kubelet's
    kubelet-client-current.pem, certificate and key in one file): healthy
    while etcd is, unhealthy when it is gone."""
    d, fake = tw.new_case(extra=("--anonymous-auth", "false"))
    import subprocess
    subprocess.run(["bash", os.path.join(FAKES, "mkcerts.sh"), d, "client", "node-1"],
                   check=True, capture_output=True)
    user = "    client-certificate: node-1.pem\n    client-key: node-1.pem\n"
    a = start(fake, tw.kubeconfig(d, user), "--health-auth", "kubeconfig")
    try:
        a.wait_log(r'health checks present the discovery credentials.*client_certificate=yes')
        tw.wait_discovered(a, tw.IPS)
        all_health(a, "healthy")
        who = {w for _, w in readyz_requests(fake)}
        check(who and all(w and w.startswith("cert:system:node:node-1") for w in who),
              "identities: %r" % who)
        fake.ctl("/etcd", {"ok": False})
        all_health(a, "unhealthy")
        fake.ctl("/etcd", {"ok": True})
        all_health(a, "healthy")
    finally:
        a.stop()
        fake.stop()


@scenario
def unusable():
    """--health-auth kubeconfig with credentials that have nothing to present,
    or a client key that is not the certificate's: exit 1 with one line
    saying why, at start and in --check-config."""
    import subprocess
    d = tw.tmpdir()
    subprocess.run(["bash", os.path.join(FAKES, "mkcerts.sh"), d], check=True)
    for name in ("a", "b"):
        subprocess.run(["bash", os.path.join(FAKES, "mkcerts.sh"), d, "client", name],
                       check=True, capture_output=True)
    cases = [
        (tw.kubeconfig(d, "    {}\n", name="none"), "neither a client certificate nor a token"),
        (tw.kubeconfig(d, "    client-certificate: a.pem\n    client-key: b.pem\n",
                       name="mismatch"), "the client key does not match the client certificate"),
    ]
    for kc, want in cases:
        for extra in ([], ["--check-config"]):
            p = subprocess.run([tw.harness_apilb(), "--kubeconfig", kc, "--health-auth",
                                "kubeconfig", "--listen", "127.0.0.1:0", "--admin-listen", "off",
                                *extra], capture_output=True, text=True, timeout=30)
            check(p.returncode == 1, "%s: exit %d, want 1: %s" % (kc, p.returncode, p.stderr))
            check(want in p.stderr, "%s%s: stderr does not say %r: %s" %
                  (os.path.basename(kc), " --check-config" if extra else "", want, p.stderr))
        print("%s: %s" % (os.path.basename(kc), want))


if __name__ == "__main__":
    run()
