# SPDX-License-Identifier: Apache-2.0
"""apilb under the seccomp filters it meets in production, for real.

There is no systemd as PID 1 on CI machines, so the systemd unit's sandbox is
rebuilt from container/apilb.service itself: its SystemCallFilter= lines
(groups expanded by this host's systemd-analyze), SystemCallErrorNumber=,
SystemCallArchitectures=, RestrictAddressFamilies=, MemoryDenyWriteExecute=,
the calls ProtectClock=/ProtectKernelModules=/ProtectKernelLogs=/
PrivateDevices=/ProtectHostname=/ProtectKernelTunables= take away, and
DynamicUser=/AmbientCapabilities=/CapabilityBoundingSet= as a non-root uid
with only those capabilities. seccomp-exec (seccomp_exec.c, libseccomp) loads
that and execs apilb. Not reproduced: the mount namespace (ProtectSystem=,
PrivateTmp=, PrivateDevices='s /dev, ProtectHome=), RestrictNamespaces=,
RestrictRealtime=, RestrictSUIDSGID=, LockPersonality= and UMask= (they
refuse with EPERM calls apilb does not make; docs/security.md).

Scenarios:
  unit_filter          apilb starts under the unit's filter, logs
                       queue_handover=sysctl, proxies, exits 0 on SIGTERM
  unit_filter_no_uring the same on a host whose systemd has no io_uring
                       calls in @aio: sends are made one by one
  unit_own_address     an upstream on the node's own (not loopback) address
                       is not paced under the unit either (AF_NETLINK)
  syscalls             every system call of a representative run (strace)
                       is allowed by the unit and by the containers/common
                       default profile, or is known to degrade on EPERM
  container_profile    apilb under that profile: it says what it does
                       without bpf and io_uring, proxies, exits 0; with
                       CAP_BPF the profile (not the kernel) refuses bpf
"""

import errno
import json
import os
import re
import signal
import socket
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
FAKES = os.path.join(ROOT, "tests", "fakes")
UNIT = os.environ.get("APILB_UNIT", os.path.join(ROOT, "container", "apilb.service"))
PROFILE = os.environ.get("APILB_CONTAINER_SECCOMP", "/usr/share/containers/seccomp.json")
EXEC = os.environ.get("SECCOMP_EXEC", "")

# --list (CMake, at configure time) only names the scenarios: no namespace.
LISTING = sys.argv[1:] == ["--list"]
if not LISTING and os.environ.get("APILB_IN_NETNS") != "1":
    if os.geteuid() != 0:
        print("SKIP: needs root for a network namespace and a non-root uid to run apilb as")
        sys.exit(77)
    os.execvpe("unshare", ["unshare", "-n", "--", sys.executable, os.path.abspath(__file__)]
               + sys.argv[1:], dict(os.environ, APILB_IN_NETNS="1"))

APISERVERS = ["10.213.0.2", "10.213.0.3", "10.213.0.4"]
if not LISTING:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for ip in APISERVERS:
        subprocess.run(["ip", "addr", "add", ip + "/32", "dev", "lo"], check=True)

sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402
from harness import (Apilb, Backend, Fail, _children, check, exchange,  # noqa: E402
                     payload, run, scenario, tmpdir, whoami, write_atomic)


def unit_user_binary():
    """A copy of apilb and its modules in a directory the unit's user can
    reach: it execs apilb after dropping root, and the build directory may
    sit below one only root can enter (a clone in mktemp -d, mode 0700)."""
    d = tmpdir()
    os.chmod(d, 0o755)
    src = os.path.dirname(os.path.abspath(harness.APILB))
    for name in ("apilb", "apilb-admin.so", "apilb-discovery.so"):
        if os.path.exists(os.path.join(src, name)):
            shutil.copy2(os.path.join(src, name), os.path.join(d, name))
    return os.path.join(d, "apilb")


APILB = harness.APILB = unit_user_binary()

# A sanitizer build: LeakSanitizer stops the world with ptrace(2), which
# the unit's filter refuses and strace already holds (it then exits 1).
# The other integration tests check for leaks.
os.environ["ASAN_OPTIONS"] = ":".join(
    x for x in (os.environ.get("ASAN_OPTIONS"), "detect_leaks=0") if x)

# What systemd's DynamicUser= would pick (the first uid of its range).
DYNAMIC_UID = 61184
CAPS = {"CAP_NET_BIND_SERVICE": 10, "CAP_NET_ADMIN": 12, "CAP_BPF": 39}

# System calls apilb makes that a filter may refuse: each degrades to a
# logged, working mode when it fails with EPERM (or ENOSYS), so a profile
# may leave it out as long as it answers with an errno instead of killing.
DEGRADES = {
    # migrate_enable(): the listeners' queue hand-over program. Without it
    # apilb logs queue_handover=sysctl and the node's
    # net.ipv4.tcp_migrate_req decides (docs/upgrade.md).
    "bpf": "queue_handover=sysctl",
    # sendq_init(): without io_uring apilb logs "sends are made one by one:
    # io_uring is not available" (it_proxy_batched_sends_denied). The three
    # come together in every profile (systemd's @aio, the runtimes' lists);
    # a refused register (the opcode probe) or enter ends the same way.
    "io_uring_setup": "sends are made one by one",
    "io_uring_enter": "sends are made one by one",
    "io_uring_register": "sends are made one by one",
}

# Calls the containers/common profile allows only with some arguments.
CONDITIONAL = {
    # Refused only for AF_NETLINK with NETLINK_AUDIT; apilb opens none.
    "socket": "not an audit socket",
}


def analyze_groups():
    """{"@group": [members, "@subgroup", ...]} from this host's systemd."""
    out = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True,
                         text=True, check=True).stdout
    groups, cur = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            cur = groups.setdefault(line.split()[0], [])
        elif not line.strip():
            cur = None
        elif cur is not None and not line.strip().startswith("#"):
            cur.append(line.split()[0])
    check("@system-service" in groups, "systemd-analyze syscall-filter lists no @system-service")
    return groups


def expand(names, groups, seen=None):
    seen = set() if seen is None else seen
    out = set()
    for n in names:
        if n.startswith("@"):
            if n in seen:
                continue
            seen.add(n)
            check(n in groups, "the unit names %s, which this systemd does not know" % n)
            out |= expand(groups[n], groups, seen)
        else:
            out.add(n.split(":")[0])
    return out


def service_settings(path):
    """[(key, value)] of the unit's [Service] section, in order."""
    items, section = [], None
    with open(path) as f:
        for raw in f:
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line
            elif section == "[Service]" and "=" in line:
                k, v = line.split("=", 1)
                items.append((k.strip(), v.strip()))
    return items


def yes(v):
    return v.lower() in ("yes", "true", "on", "1")


class Unit:
    """What the unit's sandbox means for system calls, as systemd computes
    it (systemd.exec(5)): an allow list starts from @default, later
    assignments add (or remove, with ~); an empty one resets."""

    # Calls these settings take away with EPERM (systemd's exec setup).
    IMPLIED = {"ProtectClock": ["@clock"], "ProtectKernelModules": ["@module"],
               "ProtectKernelLogs": ["syslog"], "PrivateDevices": ["@raw-io"],
               "ProtectHostname": ["sethostname", "setdomainname"],
               "ProtectKernelTunables": ["_sysctl"]}

    def __init__(self, path, groups, drop=()):
        self.allow, self.errno = None, None
        self.families, self.wx, self.user, self.caps = None, False, False, None
        self.implied = set()
        bounding = None
        for k, v in service_settings(path):
            if k == "SystemCallFilter":
                if not v:
                    self.allow = None
                    continue
                inv = v.startswith("~")
                names = expand(v.lstrip("~").split(), groups)
                check(self.allow is not None or not inv,
                      "SystemCallFilter=%s: only an allow list is reproduced" % v)
                if self.allow is None:
                    self.allow = expand(["@default"], groups) | names
                elif inv:
                    self.allow -= names
                else:
                    self.allow |= names
            elif k == "SystemCallErrorNumber":
                self.errno = None if v in ("", "kill") else getattr(errno, v, None)
                check(v in ("", "kill") or self.errno is not None,
                      "SystemCallErrorNumber=%s: not an errno name" % v)
            elif k == "SystemCallArchitectures":
                check(v == "native", "SystemCallArchitectures=%s: only native is reproduced" % v)
            elif k == "RestrictAddressFamilies":
                fams = v.split()
                check(fams and not fams[0].startswith("~"),
                      "RestrictAddressFamilies=%s: only an allow list is reproduced" % v)
                self.families = [getattr(socket, f) for f in fams]
            elif k == "MemoryDenyWriteExecute":
                self.wx = yes(v)
            elif k == "DynamicUser" or (k == "User" and v not in ("", "root", "0")):
                self.user = self.user or yes(v) or k == "User"
            elif k == "AmbientCapabilities":
                self.caps = v.split()
            elif k == "CapabilityBoundingSet":
                bounding = v.split()
            elif k in self.IMPLIED and yes(v):
                self.implied |= expand(self.IMPLIED[k], groups)
        check(self.allow is not None, "%s has no SystemCallFilter= at all" % path)
        self.allow -= set(drop)
        if bounding is not None and self.caps is not None:
            self.caps = [c for c in self.caps if c in bounding]
        for c in self.caps or []:
            check(c in CAPS, "the unit grants %s: not reproduced here" % c)

    def permits(self, name):
        if name in self.implied:
            return False
        return name in self.allow

    def policy(self, path):
        """Writes the seccomp-exec policy; returns path."""
        lines = []
        if self.user:
            lines.append("user %d %d" % (DYNAMIC_UID, DYNAMIC_UID))
        lines.append("caps " + " ".join(str(CAPS[c]) for c in self.caps or []))
        default = "kill" if self.errno is None else "errno %d" % self.errno
        lines += ["filter " + default, "allow " + " ".join(sorted(self.allow)), "filter allow"]
        if self.implied:
            lines.append("errno %d %s" % (errno.EPERM, " ".join(sorted(self.implied))))
        if self.families is not None:
            lines.append("families " + " ".join(str(int(f)) for f in self.families))
        if self.wx:
            lines.append("deny-wx")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path


def exec_wrapper():
    check(EXEC and os.access(EXEC, os.X_OK),
          "SECCOMP_EXEC=%s: not the seccomp-exec program (build/tests/packaging)" % EXEC)
    return EXEC


def as_unit_user(d):
    """The unit's user must read the test's files, as it would its own."""
    os.chmod(d, 0o755)
    for top, dirs, files in os.walk(d):
        for n in dirs + files:
            os.lchown(os.path.join(top, n), DYNAMIC_UID, DYNAMIC_UID)
    os.lchown(d, DYNAMIC_UID, DYNAMIC_UID)


def under_unit(drop=(), host="127.0.0.2", probe=None):
    """apilb under the unit's sandbox, relaying to a backend on host; probe(a,
    connection) runs while a connection is open. Returns the "sends" line."""
    d = tmpdir()
    unit = Unit(UNIT, analyze_groups(), drop)
    pol = unit.policy(os.path.join(d, "policy"))
    os.environ["APILB_WRAPPER"] = "%s %s --" % (exec_wrapper(), pol)
    b = Backend(host, "b")
    try:
        try:
            a = Apilb("--upstream", b.addr, admin=True, log_level="info")
        except Fail as e:
            m = re.search(r"apilb exited \((-?\d+)\)", str(e))
            if m and int(m.group(1)) == -signal.SIGSYS:
                raise Fail("apilb was killed by SIGSYS under %s (a call outside its "
                           "SystemCallFilter=, SystemCallErrorNumber=%s):\n%s"
                           % (UNIT, unit.errno or "unset, so kill", str(e).split(":\n", 1)[-1]))
            raise
        try:
            line = a.wait_log(r'msg="listening"')
            print(line)
            check("queue_handover=sysctl" in line, "listening line: %s" % line)
            name, conn = whoami(a.port, keep=True)
            check(name == "b", "the connection did not reach the backend")
            if probe is not None:
                probe(a, conn)
            conn.close()
            code, _ = a.admin("/readyz")
            check(code == 200, "/readyz answered %d" % code)
            sends = a.wait_log(r'msg="sends')
            print(sends)
            return sends
        finally:
            a.stop()
            print("apilb exited %d after SIGTERM" % a.proc.returncode)
    finally:
        b.stop()


@scenario
def unit_filter():
    """The unit as shipped: apilb must survive its own start."""
    sends = under_unit()
    groups = analyze_groups()
    aio = expand(["@aio"], groups)
    uring = {"io_uring_setup", "io_uring_enter", "io_uring_register"}
    print("this systemd's @aio %s the io_uring calls" % ("holds" if uring <= aio else "lacks"))
    if uring <= aio:
        check("via=io_uring" in sends, "io_uring is allowed but not used: %s" % sends)


@scenario
def unit_filter_no_uring():
    """A host whose systemd's @aio predates io_uring: EPERM, sends one by one."""
    sends = under_unit(drop=("io_uring_setup", "io_uring_enter", "io_uring_register"))
    check('io_uring is not available" err="Operation not permitted"' in sends,
          "sends line: %s" % sends)


@scenario
def unit_own_address():
    """An upstream on one of the node's own addresses that is not loopback (a
    control-plane node's own apiserver): its connections are not paced under
    the unit either. getifaddrs(3) needs an AF_NETLINK socket for that
    (RestrictAddressFamilies=); refused, the leg got the paced default."""
    try:
        with open("/proc/sys/net/ipv4/tcp_congestion_control", "w") as f:
            f.write("bbr")  # this network namespace's own default
    except OSError as e:
        print("SKIP: BBR cannot be made the default here (%s)" % e)
        sys.exit(77)
    from test_proxy import _congestion

    def probe(a, conn):
        legs = _congestion(a.proc.pid)
        up = [cc for (_, peer), cc in legs.items() if peer.startswith(APISERVERS[0] + ":")]
        local = re.search(r"loopback=(\w+)", a.wait_log(r"not paced")).group(1)
        print("upstream %s: the upstream leg uses %s (default bbr, local %s)"
              % (APISERVERS[0], up, local))
        check(up == [local], "the leg to the node's own address uses %s, not %s: apilb did not "
              "see the address as its own" % (up, local))

    under_unit(host=APISERVERS[0], probe=probe)


class Profile:
    """A runtime's seccomp profile (the OCI JSON of containers/common and
    Docker) as it applies to apilb's container: x86-64, an unprivileged
    container with only NET_BIND_SERVICE (docs/packaging.md)."""

    ARCH = {"x86_64": "amd64", "aarch64": "arm64"}

    def __init__(self, path, caps=("CAP_NET_BIND_SERVICE",)):
        self.caps = caps
        with open(path) as f:
            p = json.load(f)
        arch = self.ARCH.get(os.uname().machine, os.uname().machine)
        kernel = tuple(int(x) for x in re.findall(r"\d+", os.uname().release)[:2])
        self.default = p.get("defaultErrnoRet", errno.EPERM)
        check(p["defaultAction"] == "SCMP_ACT_ERRNO",
              "%s: default action %s, expected SCMP_ACT_ERRNO" % (path, p["defaultAction"]))
        self.verdict = {}  # name -> "allow" | "allow-if" | errno
        for r in p["syscalls"]:
            inc, exc = r.get("includes") or {}, r.get("excludes") or {}
            if not all(c in caps for c in inc.get("caps") or []) or \
                    any(c in caps for c in exc.get("caps") or []):
                continue
            if inc.get("arches") and arch not in inc["arches"] or \
                    arch in (exc.get("arches") or []):
                continue
            mk = inc.get("minKernel")
            if mk and kernel < tuple(int(x) for x in mk.split(".")[:2]):
                continue
            for n in r["names"]:
                if r["action"] == "SCMP_ACT_ALLOW":
                    v = "allow-if" if r.get("args") else "allow"
                    if self.verdict.get(n) != "allow":
                        self.verdict[n] = v
                elif r["action"] == "SCMP_ACT_ERRNO" and not r.get("args"):
                    self.verdict.setdefault(n, r.get("errnoRet", errno.EPERM))

    def answer(self, name):
        return self.verdict.get(name, self.default)

    def policy(self, path, filtered=True):
        """A seccomp-exec policy for it, as the runtime runs apilb's image:
        user 70443 with the profile's capabilities (NET_BIND_SERVICE only by
        default); filtered=False: the same without the profile. Calls allowed
        for some arguments only (socket, personality) are allowed for all
        here."""
        refused = {}
        for n, v in self.verdict.items():
            if isinstance(v, int) and v != self.default:
                refused.setdefault(v, []).append(n)
        lines = ["user 70443 70443", "caps " + " ".join(str(CAPS[c]) for c in self.caps)]
        if not filtered:
            with open(path, "w") as f:
                f.write("\n".join(lines) + "\n")
            return path
        lines += ["filter errno %d" % self.default,
                 "allow " + " ".join(sorted(n for n, v in self.verdict.items()
                                            if isinstance(v, str)))]
        lines += ["errno %d %s" % (e, " ".join(sorted(ns))) for e, ns in sorted(refused.items())]
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path


def strace_names(path, program, families):
    """The system calls in strace -f output from the exec of program on (the
    lines before are seccomp-exec's own); adds the socket(2) calls' address
    families and protocols to families."""
    names, started = set(), False
    call = re.compile(r"^\d+\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()")
    execve = re.compile(r'^\d+\s+execve\("%s"' % re.escape(program))
    with open(path) as f:
        for line in f:
            started = started or execve.match(line) is not None
            if not started:
                continue
            m = call.match(line)
            if m:
                names.add(m.group(1) or m.group(2))
            m = re.match(r"^\d+\s+socket\((\w+), [^,]+, (\w+)\)", line)
            if m:
                families.add(m.groups())
    check(started, "%s: no exec of %s" % (path, program))
    return names


def representative_run(d, families):
    """Every path that makes system calls of its own, each once: two
    listeners, the admin endpoint, readyz health checks over TLS, discovery
    with a kubeconfig, the state file, a SIGHUP reload, proxying with and
    without io_uring, the upgrade (a second apilb on the same ports), a
    SIGTERM drain, and bulk data (splice). Every apilb runs as the unit's
    user under strace -f.
    Returns the set of system call names; adds (family, protocol) of each
    socket(2) to families."""
    subprocess.run(["bash", os.path.join(FAKES, "mkcerts.sh"), d], check=True,
                   stdout=subprocess.DEVNULL)
    with open(os.path.join(d, "token"), "w") as f:
        f.write("token-one\n")
    ready = os.path.join(d, "ready.json")
    fake = subprocess.Popen([sys.executable, os.path.join(FAKES, "fake_apiserver.py"),
                             "--cert", os.path.join(d, "server.pem"),
                             "--key", os.path.join(d, "server.key"),
                             "--token-file", os.path.join(d, "token"), "--ready-file", ready]
                            + sum((["--listen", ip + ":6443"] for ip in APISERVERS), []))
    _children.append(fake)
    end = time.time() + 20
    while not os.path.exists(ready):
        check(fake.poll() is None and time.time() < end, "the fake apiserver did not start")
        time.sleep(0.05)
    with open(os.path.join(d, "kubeconfig"), "w") as f:
        f.write("apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                "clusters: [{name: c, cluster: {server: 'https://%s:6443', "
                "certificate-authority: ca.pem}}]\n"
                "users: [{name: u, user: {tokenFile: token}}]\n"
                "contexts: [{name: c, context: {cluster: c, user: u}}]\n" % APISERVERS[0])
    upfile = os.path.join(d, "upstreams")
    write_atomic(upfile, "%s:6443\n" % APISERVERS[1])
    os.mkdir(os.path.join(d, "state"))
    pol = os.path.join(d, "user-policy")
    with open(pol, "w") as f:  # the unit's user and capabilities, no filter: see every call
        f.write("user %d %d\ncaps %d\n" % (DYNAMIC_UID, DYNAMIC_UID, CAPS["CAP_NET_BIND_SERVICE"]))
    as_unit_user(d)

    # Not in d: apilb watches that directory, and each line strace writes
    # there would wake it to make more.
    traces = tmpdir()

    def start(name, *extra, upstream=None, **kw):
        os.environ["APILB_WRAPPER"] = "strace -f -qq -o %s %s %s --" % (
            os.path.join(traces, name + ".strace"), exec_wrapper(), pol)
        # The periodic look at the listeners' groups (sharewatch.h) runs too.
        kw["env"] = dict(kw.get("env") or {}, APILB_LISTENER_CHECK_INTERVAL="200ms")
        if upstream is not None:  # plain TCP, no discovery
            a = Apilb("--upstream", upstream, *extra, log_level="info", **kw)
        else:
            a = Apilb("--kubeconfig", os.path.join(d, "kubeconfig"),
                      "--upstreams-file", upfile, "--state-file", os.path.join(d, "state", "s"),
                      "--health-interval", "2s", "--health-timeout", "2s",
                      "--discovery-debounce", "200ms", "--shutdown-timeout", "2s",
                      *extra, health="readyz", log_level="debug", **kw)
        # Signals go to apilb, strace's child (strace passes its exit code on).
        with open("/proc/%d/task/%d/children" % (a.proc.pid, a.proc.pid)) as f:
            pid = int(f.read().split()[0])
        a.proc.send_signal = lambda sig: os.kill(pid, sig)
        a.traced_pid = pid
        return a

    def kill(a):
        """After a failure: apilb first (strace killed would leave it running)."""
        if a is not None and a.proc.poll() is None:
            os.kill(a.traced_pid, signal.SIGKILL)
            a.proc.wait(10)

    def curl(port, path="/version"):
        p = subprocess.run(["curl", "-sS", "--fail", "--max-time", "10",
                            "--cacert", os.path.join(d, "ca.pem"),
                            "--resolve", "kubernetes:%d:127.0.0.1" % port,
                            "https://kubernetes:%d%s" % (port, path)],
                           capture_output=True, text=True, timeout=20)
        check(p.returncode == 0, "curl through apilb: %s" % p.stderr.strip())
        return p.stdout

    def wait_upstreams(a, want, timeout=90):
        end = time.time() + timeout
        while True:
            _, body = a.admin("/upstreams")
            got = sorted(u["address"] for u in json.loads(body)["upstreams"]
                         if u.get("health") == "healthy" and not u["draining"])
            if set(want) <= set(got):
                return got
            check(time.time() < end, "apilb uses %r, want %r among them" % (got, want))
            time.sleep(0.2)

    # The unit's apilb cannot load the hand-over program (bpf is refused):
    # what docs/upgrade.md tells operators to do instead, in this namespace,
    # so no connection queued in the closing apilb is reset.
    with open("/proc/sys/net/ipv4/tcp_migrate_req", "w") as f:
        f.write("1")
    def until_traced(name, call, port, timeout=60):
        """Bursts of 8 concurrent requests until apilb name has made call:
        sends are batched (io_uring) only when one round of events has
        several, which sequential requests may never give."""
        end = time.time() + timeout
        while True:
            with open(os.path.join(traces, name + ".strace")) as f:
                if re.search(r"^\d+\s+(<\.\.\. )?%s\b" % call, f.read(), re.M):
                    return
            check(time.time() < end, "apilb %s made no %s call in %d s" % (name, call, timeout))
            ps = [subprocess.Popen(["curl", "-sS", "--fail", "--max-time", "10", "-o", "/dev/null",
                                    "--cacert", os.path.join(d, "ca.pem"),
                                    "--resolve", "kubernetes:%d:127.0.0.1" % port,
                                    "https://kubernetes:%d/version" % port]) for _ in range(8)]
            check(all(p.wait(20) == 0 for p in ps), "a request through apilb %s failed" % name)

    a = start("a", "--listen", "127.0.0.2:0", admin=True)
    b = None
    try:
        wait_upstreams(a, ["%s:6443" % ip for ip in APISERVERS])
        for _ in range(5):
            curl(a.port)
        until_traced("a", "io_uring_enter", a.port)
        for path in ("/metrics", "/readyz", "/healthz", "/upstreams"):
            check(a.admin(path)[0] == 200, "admin %s" % path)
        write_atomic(upfile, "%s:6443\n%s:6443\n" % (APISERVERS[1], APISERVERS[2]))
        a.signal(signal.SIGHUP)
        a.wait_log(r"SIGHUP: reloading", 20)
        b = start("b", "--listen", "127.0.0.2:%d" % a.ports[1], "--io-uring=false",
                  listen="127.0.0.1:%d" % a.port, admin="127.0.0.1:%d" % a.admin_port)
        b.wait_log(r"sends are made one by one", 20)
        long_conn = socket.create_connection(("127.0.0.1", a.port), timeout=10)
        a.signal(signal.SIGTERM)
        a.wait_log(r"shutting down", 20)
        for _ in range(5):
            curl(a.port)  # B (or the draining A's queue, handed over)
        check(a.wait_exit(60) == 0, "the old apilb did not exit 0 after SIGTERM")
        long_conn.close()
        for _ in range(3):
            curl(a.port)
        wait_upstreams(b, ["%s:6443" % ip for ip in APISERVERS])
        b.signal(signal.SIGTERM)
        check(b.wait_exit(60) == 0, "the new apilb did not exit 0 after SIGTERM")
    finally:
        kill(a)
        kill(b)
        fake.kill()
        fake.wait()
    a.check_sanitizers()
    b.check_sanitizers()
    # Bulk data, which the relay splices through a pipe: 8 MiB echoed by a
    # plain backend (the fake apiserver has nothing that large).
    echo = Backend("127.0.0.3", "echo")
    c = start("c", upstream=echo.addr)
    try:
        data = payload(8 << 20)
        check(exchange(c.port, data, timeout=120) == data, "8 MiB echoed came back different")
        c.signal(signal.SIGTERM)
        check(c.wait_exit(60) == 0, "the bulk apilb did not exit 0 after SIGTERM")
    finally:
        kill(c)
        echo.stop()
    names = set()
    for n in ("a", "b", "c"):
        names |= strace_names(os.path.join(traces, n + ".strace"), APILB, families)
    # A run that did not reach these paths would prove little.
    for n in ("bpf", "io_uring_setup", "io_uring_enter", "accept4", "connect",
              "inotify_add_watch", "renameat", "splice"):
        check(n in names, "the run never called %s: not representative" % n)
    return names


@scenario
def syscalls():
    """Every call apilb makes is allowed by the unit and by the containers/
    common default profile, or is known to degrade when refused (DEGRADES);
    a refused call must fail with an errno there, never kill apilb."""
    d, families = tmpdir(), set()
    names = representative_run(d, families)
    print("apilb made %d different system calls: %s" % (len(names), " ".join(sorted(names))))
    print("sockets: %s" % " ".join(sorted("%s/%s" % f for f in families)))
    problems = []
    unit = Unit(UNIT, analyze_groups())
    for fam, proto in sorted(families):
        if unit.families is not None and getattr(socket, fam, None) not in unit.families:
            problems.append("%s: apilb opens %s sockets, which RestrictAddressFamilies= "
                            "refuses (EAFNOSUPPORT)" % (UNIT, fam))
        if fam == "AF_NETLINK" and proto == "NETLINK_AUDIT":
            problems.append("apilb opens a NETLINK_AUDIT socket, which the runtimes' "
                            "profiles refuse (CONDITIONAL says it does not)")
    refused = sorted(n for n in names if not unit.permits(n))
    print("%s refuses: %s (%s)" % (os.path.basename(UNIT), " ".join(refused) or "nothing",
          "kill" if unit.errno is None else errno.errorcode[unit.errno]))
    for n in refused:
        if n not in DEGRADES:
            problems.append("%s: apilb calls %s, which the unit does not allow: allow it in "
                            "SystemCallFilter= (with a comment why) or make apilb work without "
                            "it and list it in DEGRADES" % (UNIT, n))
        elif unit.errno is None:
            problems.append("%s: apilb calls %s, outside SystemCallFilter=, and without "
                            "SystemCallErrorNumber= the kernel kills apilb with SIGSYS instead "
                            "of answering EPERM (then: %s)" % (UNIT, n, DEGRADES[n]))
    if os.path.exists(PROFILE):
        prof = Profile(PROFILE)
        answers = {n: prof.answer(n) for n in sorted(names) if prof.answer(n) != "allow"}
        print("%s: %s" % (PROFILE, ", ".join(
            "%s %s" % (n, v if isinstance(v, str) else errno.errorcode.get(v, v))
            for n, v in answers.items()) or "allows everything"))
        for n, v in answers.items():
            if v == "allow-if" and n not in CONDITIONAL:
                problems.append("%s allows %s only with some arguments: check apilb's and add "
                                "it to CONDITIONAL" % (PROFILE, n))
            elif v != "allow-if" and n not in DEGRADES:
                problems.append("%s refuses %s (%s), which apilb calls and does not list in "
                                "DEGRADES" % (PROFILE, n, errno.errorcode.get(v, v)))
    else:
        print("no %s here (golang-github-containers-common): not checked" % PROFILE)
    check(not problems, "\n".join(problems))


def handover_under(pol):
    """apilb's listening line and the reason that follows it, under the
    seccomp-exec policy pol."""
    os.environ["APILB_WRAPPER"] = "%s %s --" % (exec_wrapper(), pol)
    a = Apilb("--upstream", "127.0.0.2:1", log_level="info")
    try:
        line = a.wait_log(r'msg="listening"')
        why = a.wait_log(r'handed to the next apilb only if', 2) if "=sysctl" in line else ""
    finally:
        a.stop()
    return line, why


@scenario
def container_profile():
    """apilb under the containers/common default profile (podman's; derived
    from Docker's). As the image runs (user 70443, NET_BIND_SERVICE only):
    io_uring is not listed, so it fails with the profile's ENOSYS, and bpf
    with EPERM; apilb says so with those reasons, proxies and exits 0. That
    bpf EPERM is the kernel's as much as the profile's (unprivileged BPF is
    off, the user lacks CAP_BPF), so the profile's own refusal is shown with
    CAP_BPF and CAP_NET_ADMIN added (no CAP_SYS_ADMIN, which the profile
    wants for bpf): without the profile the hand-over program loads
    (queue_handover=on), under it bpf answers EPERM and apilb says
    queue_handover=sysctl."""
    if not os.path.exists(PROFILE):
        print("SKIP: no %s (Debian golang-github-containers-common)" % PROFILE)
        sys.exit(77)
    d = tmpdir()
    pol = Profile(PROFILE).policy(os.path.join(d, "policy"))
    os.environ["APILB_WRAPPER"] = "%s %s --" % (exec_wrapper(), pol)
    b = Backend("127.0.0.2", "b")
    a = Apilb("--upstream", b.addr, admin=True, log_level="info")
    try:
        line = a.wait_log(r'msg="listening"')
        print(line)
        check("queue_handover=sysctl" in line, "listening line: %s" % line)
        why = a.wait_log(r'handed to the next apilb only if', 2)
        check('err="Operation not permitted"' in why, "hand-over reason: %s" % why)
        sends = a.wait_log(r'msg="sends')
        print(sends)
        check("io_uring is not available" in sends and 'err="Function not implemented"' in sends,
              "sends line: %s" % sends)
        check(whoami(a.port) == "b", "the connection did not reach the backend")
        check(a.admin("/readyz")[0] == 200, "/readyz did not answer 200")
    finally:
        a.stop()
        b.stop()
    print("apilb exited %d after SIGTERM" % a.proc.returncode)
    bpf = Profile(PROFILE, caps=("CAP_NET_BIND_SERVICE", "CAP_NET_ADMIN", "CAP_BPF"))
    line, _ = handover_under(bpf.policy(os.path.join(d, "bpf-open"), filtered=False))
    print("with CAP_BPF and CAP_NET_ADMIN, no profile: %s" % line)
    check("queue_handover=on" in line, "without the profile the hand-over program did not "
          "load (this kernel cannot show the profile's refusal): %s" % line)
    line, why = handover_under(bpf.policy(os.path.join(d, "bpf-profile")))
    print("with CAP_BPF and CAP_NET_ADMIN, under %s: %s %s" % (PROFILE, line, why))
    check("queue_handover=sysctl" in line and 'err="Operation not permitted"' in why,
          "the profile did not refuse bpf: %s %s" % (line, why))


if __name__ == "__main__":
    run()
