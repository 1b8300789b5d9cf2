# SPDX-License-Identifier: Apache-2.0
"""The state file: written atomically on every change of the learned set,
read at start (so a restart with every seed dead still works), a corrupt or
foreign file is reported and ignored, and kill -9 during writes never leaves
an unreadable file."""

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

from harness import (Apilb, Backend, Fail, check, metric, refused_addr, run, scenario, tmpdir,
                     whoami, write_atomic)


@scenario
def roundtrip():
    d = tmpdir()
    ups, state = os.path.join(d, "ups"), os.path.join(d, "state")
    A, B = Backend("127.0.0.2", "A"), Backend("127.0.0.3", "B")
    write_atomic(ups, "%s\n%s\n" % (A.addr, B.addr))
    a = Apilb("--upstreams-file", ups, "--state-file", state)
    try:
        a.wait_log(r'state file written.*upstreams=2')
        text = open(state).read()
        check(A.addr in text and B.addr in text and text.startswith("# apilb state v1\n"),
              "state file content: %r" % text)
        a.stop()
        # Restart with only a dead seed and the state file.
        dead = refused_addr("127.0.0.4")
        a = Apilb("--upstream", dead, "--state-file", state)
        a.wait_log(r'state file loaded.*upstreams=2')
        names = {whoami(a.port) for _ in range(20)}
        check(names == {"A", "B"}, "restart with the state file reached %r" % names)
        check(not any("upstream connect failed" in l for l in a.lines()),
              "the dead seed was tried although state entries work")
    finally:
        a.stop()
        A.stop()
        B.stop()


@scenario
def metrics():
    """apilb_state_file_* tell whether the state file is written: a file it
    can write, then an upstreams file change it cannot write (its directory
    replaced by a file), then one it can again."""
    d = tmpdir()
    ups, sdir = os.path.join(d, "ups"), os.path.join(d, "s")
    os.mkdir(sdir)
    A, B = Backend("127.0.0.2", "A"), Backend("127.0.0.3", "B")
    write_atomic(ups, "%s\n" % A.addr)
    a = Apilb("--upstreams-file", ups, "--state-file", os.path.join(sdir, "state"), admin=True)
    try:
        a.wait_log(r'state file written.*upstreams=1')
        check(metric(a, "apilb_state_file_write_ok") == 1 and
              metric(a, 'apilb_state_file_writes_total{result="success"}') == 1 and
              metric(a, "apilb_state_file_last_write_timestamp_seconds") > time.time() - 60,
              "after a write: %s" % [l for l in a.admin("/metrics")[1].splitlines()
                                     if "state_file" in l])
        os.rename(sdir, sdir + ".gone")
        with open(sdir, "w") as f:
            f.write("not a directory\n")
        write_atomic(ups, "%s\n%s\n" % (A.addr, B.addr))
        a.wait_log(r'state file not written')
        check(metric(a, "apilb_state_file_write_ok") == 0 and
              metric(a, 'apilb_state_file_writes_total{result="failure"}') >= 1,
              "after a failed write: write_ok %s failures %s" % (
                  metric(a, "apilb_state_file_write_ok"),
                  metric(a, 'apilb_state_file_writes_total{result="failure"}')))
        os.unlink(sdir)
        os.rename(sdir + ".gone", sdir)
        mark = len(a.lines())
        write_atomic(ups, "%s\n" % B.addr)
        a.wait_log(r'state file written.*upstreams=1', start=mark)
        check(metric(a, "apilb_state_file_write_ok") == 1 and
              metric(a, 'apilb_state_file_writes_total{result="success"}') == 2,
              "after the directory came back: write_ok %s" % metric(a, "apilb_state_file_write_ok"))
        print("state file metrics: written 1, failed, written again")
    finally:
        a.stop()
        A.stop()
        B.stop()


@scenario
def corrupt():
    d = tmpdir()
    state = os.path.join(d, "state")
    b = Backend("127.0.0.2", "seed")
    bad = {
        "garbage": "\x00\x01garbage",
        "foreign": '{"upstreams": ["10.0.0.1:6443"]}\n',
        "torn": "# apilb state v1\nupstream 10.0.0.1:6443\nupst",
        "edited": "# apilb state v1\nupstream 10.0.0.9:6443\nend 1 00000000\n",
        "bad address": "# apilb state v1\nupstream 10.0.0.1:99999\nend 1 00000000\n",
    }
    try:
        for what, text in bad.items():
            with open(state, "w") as f:
                f.write(text)
            a = Apilb("--upstream", b.addr, "--state-file", state)
            try:
                a.wait_log(r'state file ignored')
                check(whoami(a.port) == "seed", "%s state file broke the proxy" % what)
            finally:
                a.stop()
    finally:
        b.stop()


@scenario
def crash_safety():
    """kill -9 while the state file is rewritten many times a second."""
    d = tmpdir()
    ups, state = os.path.join(d, "ups"), os.path.join(d, "state")
    bs = [Backend("127.0.0.%d" % (2 + i % 3), "b%d" % i) for i in range(5)]
    rng = random.Random(7)
    try:
        kills = writes = 0
        # At least 12 rounds, more on a slow (sanitized, loaded) machine
        # until the kills have raced with 50 writes.
        for round_ in range(40):
            if round_ >= 12 and writes >= 50:
                break
            write_atomic(ups, "%s\n" % bs[0].addr)
            a = Apilb("--upstreams-file", ups, "--state-file", state)
            stop = threading.Event()

            def churn():
                while not stop.is_set():
                    pick = rng.sample(bs, rng.randint(1, len(bs)))
                    write_atomic(ups, "".join("%s\n" % b.addr for b in pick))
                    try:
                        a.signal(signal.SIGHUP)
                    except ProcessLookupError:
                        return
                    time.sleep(0.002)

            t = threading.Thread(target=churn)
            t.start()
            time.sleep(rng.uniform(0.05, 0.3))
            a.signal(signal.SIGKILL)
            a.wait_exit(5)
            stop.set()
            t.join()
            kills += 1
            writes += sum('state file written' in l for l in a.lines())
            # Whatever was on disk must load.
            b = Apilb("--upstream", refused_addr("127.0.0.4"), "--state-file", state)
            try:
                b.wait_log(r'state file loaded')
                check(not any("state file ignored" in l for l in b.lines()),
                      "round %d: unreadable state file after kill -9" % round_)
            finally:
                b.stop()
        print("kill -9 rounds: %d, state file writes before the kills: %d, readable after each"
              % (kills, writes))
        check(writes >= 50, "only %d writes: the kills did not race with writing" % writes)
    finally:
        for b in bs:
            b.stop()


def fnv1a(data):
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def state_ok(path):
    """True when path is a whole state file (its trailer's count and checksum
    match, as statefile_parse checks)."""
    with open(path, "rb") as f:
        text = f.read()
    body, _, last = text.rstrip(b"\n").rpartition(b"\n")
    body += b"\n"
    lines = body.splitlines()
    return (text.endswith(b"\n") and lines[0] == b"# apilb state v1" and
            last == b"end %d %08x" % (len(lines) - 1, fnv1a(body)))


def in_pid_ns(a):
    """The PID of apilb a started through `unshare --pid --fork` (its child)."""
    t0 = time.time()
    while time.time() < t0 + 5:
        with open("/proc/%d/task/%d/children" % (a.proc.pid, a.proc.pid)) as f:
            kids = f.read().split()
        if kids:
            return int(kids[0])
        time.sleep(0.01)
    raise Fail("no apilb under unshare")


@scenario
def two_writers():
    """Two apilbs that share a state file and are both PID 1 (the old and the
    new DaemonSet pod during a rollout, each in its own PID namespace) write
    it many times at once: every write succeeds and the file is always whole."""
    if os.geteuid() != 0:
        print("SKIP: needs root for PID namespaces")
        sys.exit(77)
    d = tmpdir()
    state = os.path.join(d, "state")
    bs = [Backend("127.0.0.%d" % (2 + i % 3), "b%d" % i) for i in range(5)]
    rng = random.Random(11)
    wrapper = os.environ.get("APILB_WRAPPER", "")
    os.environ["APILB_WRAPPER"] = "unshare --pid --fork --kill-child " + wrapper
    ps, ups = [], []
    try:
        for i in range(2):
            ups.append(os.path.join(d, "ups%d" % i))
            write_atomic(ups[i], "%s\n" % bs[i].addr)
            ps.append(Apilb("--upstreams-file", ups[i], "--state-file", state))
        os.environ["APILB_WRAPPER"] = wrapper
        pids = [in_pid_ns(a) for a in ps]
        with open("/proc/%d/status" % pids[0]) as f:
            nspid = [l for l in f.read().splitlines() if l.startswith("NSpid:")]
        check(nspid and nspid[0].split()[-1] == "1", "apilb is not PID 1 in its namespace: %s"
              % nspid)
        torn = 0
        t0 = time.time()
        while time.time() < t0 + 4:
            for i in range(2):
                pick = rng.sample(bs, rng.randint(1, len(bs)))
                write_atomic(ups[i], "".join("%s\n" % b.addr for b in pick))
                os.kill(pids[i], signal.SIGHUP)
            time.sleep(0.003)
            torn += not state_ok(state)
        time.sleep(0.5)
        writes = [sum("state file written" in l for l in a.lines()) for a in ps]
        failed = [l for a in ps for l in a.lines() if "state file not written" in l]
        left = [n for n in os.listdir(d) if ".tmp" in n]
        print("two apilbs as PID 1 sharing %s: %s writes, %d failed, %d torn reads, "
              "temporary files left %s" % (state, writes, len(failed), torn, left))
        check(min(writes) >= 20, "too few writes to race: %s" % writes)
        check(not failed, "writes failed: %s" % failed[:3])
        check(torn == 0 and state_ok(state), "the state file was torn")
        for i, a in enumerate(ps):
            os.kill(pids[i], signal.SIGTERM)
            check(a.wait_exit(20) == 0, "apilb %d did not exit 0" % i)
            a.check_sanitizers()
        check(not [n for n in os.listdir(d) if ".tmp" in n], "temporary files left behind")
    finally:
        os.environ["APILB_WRAPPER"] = wrapper
        for a in ps:
            if a.proc.poll() is None:  # unshare --kill-child takes apilb along
                a.proc.kill()
                a.proc.wait()
        for b in bs:
            b.stop()


@scenario
def slow_disk():
    """While the state file is synced to a slow disk (every fsync of a file
    takes 3 s: an LD_PRELOAD shim built here), /readyz and /upstreams still
    answer at once and a SIGHUP reload is applied at once; and the writes keep
    their order: two changes made during a write leave the newer in the file."""
    d = tmpdir()
    shim = os.path.join(d, "slow_fsync.so")
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", shim,
                    os.path.join(os.path.dirname(os.path.abspath(__file__)), "shims",
                                 "slow_fsync.c"), "-ldl"], check=True)
    ups, state, mark = (os.path.join(d, n) for n in ("ups", "state", "syncing"))
    A, B, C = (Backend("127.0.0.%d" % i, n) for i, n in ((2, "A"), (3, "B"), (4, "C")))
    write_atomic(ups, "%s\n" % A.addr)
    env = {"LD_PRELOAD": shim, "SLOW_FSYNC_MS": "3000", "SLOW_FSYNC_MARK": mark,
           # A sanitized apilb must accept a library loaded before its runtime.
           "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"}
    a = Apilb("--upstreams-file", ups, "--state-file", state, admin=True, env=env)
    try:
        a.wait_log(r"state file written.*upstreams=1", 20)
        write_atomic(ups, "%s\n%s\n" % (A.addr, B.addr))
        a.signal(signal.SIGHUP)
        t0 = time.time()
        while not os.path.exists(mark) and time.time() < t0 + 10:
            time.sleep(0.01)
        check(os.path.exists(mark), "no state file sync began after the reload")
        took = {}
        for path in ("/readyz", "/upstreams"):
            t1 = time.time()
            code, body = a.admin(path)
            took[path] = time.time() - t1
            check(code == 200, "%s answered %d" % (path, code))
        print("during a 3 s fsync: /readyz answered in %.3f s, /upstreams in %.3f s"
              % (took["/readyz"], took["/upstreams"]))
        check(took["/readyz"] < 1.0 and took["/upstreams"] < 1.0,
              "admin answers waited for the disk: %s" % took)
        # Two more changes while that write is under way: the second wins.
        write_atomic(ups, "%s\n%s\n%s\n" % (A.addr, B.addr, C.addr))
        a.signal(signal.SIGHUP)
        a.wait_log(r"upstream table published.*upstreams=3", 10)
        n = len(a.lines())
        write_atomic(ups, "%s\n%s\n" % (A.addr, C.addr))  # the file watch reloads too
        t1 = time.time()
        a.signal(signal.SIGHUP)
        a.wait_log(r"upstream removed\" upstream=%s" % re.escape(B.addr), 10, start=n)
        # Published while the disk is busy (the table comes before the file).
        applied = time.time() - t1
        syncing = os.path.exists(mark)
        print("a reload during a sync applied in %.3f s (sync still under way: %s)"
              % (applied, syncing))
        check(applied < 1.0, "the reload waited %.2f s for the disk" % applied)
        want = "# apilb state v1\nupstream %s\nupstream %s\n" % (A.addr, C.addr)
        t1 = time.time()
        while time.time() < t1 + 20 and not open(state).read().startswith(want):
            time.sleep(0.1)
        check(open(state).read().startswith(want), "the state file holds %r" % open(state).read())
        time.sleep(3.5)  # an older write, were one still pending, would land now
        text = open(state).read()
        writes = [l for l in a.lines() if "state file written" in l]
        print("state file after the changes: %s; %d writes" %
              (text.splitlines()[1:-1], len(writes)))
        check(text.startswith(want), "an older set overwrote the newest: %r" % text)
        check(not any("state file not written" in l for l in a.lines()), "a write failed")
    finally:
        a.stop()
        for b in (A, B, C):
            b.stop()


if __name__ == "__main__":
    run()
