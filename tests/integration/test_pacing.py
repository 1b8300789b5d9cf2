# SPDX-License-Identifier: Apache-2.0
"""A black-holed upstream noticed from the data path (--upstream-ack-timeout),
and paced closes and dials (--close-spread, --redial-spread). Each scenario runs with apilb's
default values of those two flags, so that the defaults are what is proved."""

import hashlib
import os
import select
import socket
import subprocess
import threading
import time

from harness import (Apilb, Backend, Fail, check, closed_by_peer, metric, roundtrip, run, scenario,
                     scenario_in_netns, whoami)


def stop_all(a, keep, *backends):
    for s in keep:
        s.close()
    a.stop()
    for b in backends:
        b.stop()


def on(a, backend, n, keep):
    """n connections through apilb a that reached backend (whoami), kept
    open; connections that reached another backend go into keep too."""
    got = []
    for _ in range(40 * n):
        if len(got) == n:
            return got
        name, s = whoami(a.port, keep=True)
        (got if name == backend.name else keep).append(s)
    raise Fail("fewer than %d connections reached %s" % (n, backend.name))


def is_open(s):
    """True when nothing (no byte, no FIN, no reset) has arrived on s."""
    r, _, _ = select.select([s], [], [], 0)
    return not r


@scenario
def unacked_upstream():
    """An upstream that black-holes after the handshake (iptables DROP of its
    port in both directions: no RST, no ICMP). A connection through apilb
    that sends a request into the hole is reset by apilb within the ack
    timeout (5 s by default, well before the client's 10 s request timeout),
    and the next connection goes to the other upstream at once; an idle
    connection to the same upstream stays open (no byte of it is unacked)
    until the health checks close it. The checks are slow here (20 s) so
    that only the data path can explain the first close."""
    if scenario_in_netns(__file__, "unacked_upstream"):
        return
    b1, b2 = Backend("127.0.0.2"), Backend("127.0.0.3")
    a = Apilb("--upstream", b1.addr, "--upstream", b2.addr, "--health-interval", "20s",
              health="tcp", admin=True)
    keep = []
    try:
        busy, idle = on(a, b1, 2, keep)
        roundtrip(busy, b"before")
        for d in ("--dport", "--sport"):
            subprocess.run(["iptables", "-A", "INPUT", "-p", "tcp", d, str(b1.port), "-j", "DROP"],
                           check=True)
        t0 = time.time()
        busy.sendall(b"a request into the hole")
        busy.settimeout(15)
        try:
            got = busy.recv(100)
            what = "EOF" if got == b"" else "bytes %r" % got
        except ConnectionResetError:
            what = "reset"
        except socket.timeout:
            what = "nothing for 15 s"
        closed_after = time.time() - t0
        t1 = time.time()
        try:
            name = whoami(a.port, timeout=5)
        except (OSError, Fail) as e:
            name = "error %r" % e
        next_s = time.time() - t1
        idle_open = is_open(idle)
        time.sleep(1.0)
        idle_open_later = is_open(idle)
        unacked = metric(a, 'apilb_upstream_closed_connections_total{upstream="%s",'
                            'reason="unacked"}' % b1.addr)
        print("black hole after the handshake: the busy connection saw %s after %.2f s; the next "
              "connection reached %s in %.2f s; the idle one to the same upstream open then: %s, "
              "1 s later: %s; closed as unacked (metric): %s" %
              (what, closed_after, name, next_s, idle_open, idle_open_later, unacked))
        check(what == "reset", "the busy connection was not reset (%s)" % what)
        check(closed_after < 8.0, "closed after %.1f s, not within the ack timeout" % closed_after)
        check(name == b2.name, "the next connection did not go to the other upstream")
        check(next_s < 0.5, "the next connection took %.2f s (dialled the hole?)" % next_s)
        check(idle_open and idle_open_later, "the idle connection was closed by the black hole")
        check(unacked == 1, "apilb_upstream_closed_connections_total unacked = %s" % unacked)
        check(any("upstream stopped acknowledging" in l for l in a.lines()), "no log line")
        # The idle one goes when the health checks have failed (--fall 2).
        t2 = time.time()
        check(closed_by_peer(idle, 60), "the idle connection outlived the failed health checks")
        print("the idle connection was closed %.1f s later, by the health checks" %
              (time.time() - t2))
        a.check_sanitizers()
    finally:
        subprocess.run(["iptables", "-F", "INPUT"])
        stop_all(a, keep, b1, b2)


@scenario
def stalled_reader_kept():
    """An upstream that reads nothing for longer than the ack timeout (a busy
    apiserver) is not ended by it: its kernel acknowledges what fits, then
    answers the window probes. 8 MiB sent while it reads nothing for 8 s
    arrive whole. (A slow apiserver is the same case with late ACKs; no
    netem on this kernel to add delay on loopback.)"""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    srv.bind(("127.0.0.2", 0))
    srv.listen(4)
    up = "127.0.0.2:%d" % srv.getsockname()[1]
    a = Apilb("--upstream", up, admin=True)
    answer = []

    def server():
        c, _ = srv.accept()
        time.sleep(8.0)  # reads nothing: the window closes, probes follow
        h = hashlib.sha256()
        while True:
            d = c.recv(1 << 16)
            if not d:
                break
            h.update(d)
        c.sendall(h.hexdigest().encode())
        c.close()
    t = threading.Thread(target=server, daemon=True)
    t.start()
    try:
        data = os.urandom(8 << 20)
        s = socket.create_connection(("127.0.0.1", a.port), timeout=60)
        t0 = time.time()
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            try:
                d = s.recv(128)
            except ConnectionResetError:
                answer.append("reset")
                break
            if not d:
                break
            got += d
        unacked = metric(a, 'apilb_upstream_closed_connections_total{upstream="%s",'
                            'reason="unacked"}' % up)
        print("8 MiB to an upstream that read nothing for 8 s: %s after %.1f s; closed as "
              "unacked (metric): %s" % ("the right sha256" if
                                        got == hashlib.sha256(data).hexdigest().encode()
                                        else "%r %s" % (got[:20], answer), time.time() - t0,
                                        unacked))
        check(got == hashlib.sha256(data).hexdigest().encode(), "the bytes did not arrive whole")
        check(not unacked, "a reading-nothing upstream was taken for a black hole")
        a.check_sanitizers()
    finally:
        a.stop()
        srv.close()


def timed_dials(a, n, keep):
    """n new clients through a, one after another, kept open: how long each
    took to be answered, and which backend answered it."""
    took, names = [], []
    for _ in range(n):
        t1 = time.time()
        name, s = whoami(a.port, keep=True, timeout=10)
        took.append(time.time() - t1)
        names.append(name)
        keep.append(s)
    return took, names


def spread(times):
    """max - min of times, and the most of them within one second."""
    times = sorted(times)
    most = max(sum(1 for u in times if t <= u < t + 1.0) for t in times)
    return times[-1] - times[0], most


@scenario
def close_spread():
    """An upstream that turns unhealthy (its accept queue full: the checks
    time out, its open connections still work): its 30 connections are
    closed spread over the --close-spread window (5 s by default), not in
    one instant; metrics count them, a log line says so."""
    b1, b2 = Backend("127.0.0.2"), Backend("127.0.0.3")
    a = Apilb("--upstream", b1.addr, "--upstream", b2.addr, "--health-interval", "500ms",
              "--health-timeout", "300ms", "--fall", "1", health="tcp", admin=True)
    keep, closed = [], []
    try:
        conns = on(a, b1, 30, keep)
        lock = threading.Lock()

        def watch(s):
            if closed_by_peer(s, 30):
                with lock:
                    closed.append(time.time())
        ts = [threading.Thread(target=watch, args=(s,), daemon=True) for s in conns]
        for t in ts:
            t.start()
        b1.freeze()
        end = time.time() + 10
        while not closed and time.time() < end:
            time.sleep(0.01)
        # Inside the window: new clients (one whose request the hole held,
        # retrying) dial at once; the closes are what is spread.
        took, names = timed_dials(a, 5, keep)
        for name in names:
            check(name == b2.name, "a new client reached %s" % name)
        for t in ts:
            t.join(40)
        width, most = spread(closed)
        print("30 connections of an upstream turned unhealthy: %d closed, over %.2f s, at most %d "
              "in one second; closed by spread (metric): %s" %
              (len(closed), width, most, metric(a, "apilb_connections_closed_spread_total")))
        check(len(closed) == 30, "not every connection was closed")
        check(width >= 2.5, "the closes were not spread (%.2f s)" % width)
        check(most <= 15, "%d closes in one second" % most)
        check(metric(a, "apilb_connections_closed_spread_total") == 30, "metric")
        check(metric(a, "apilb_closes_spread_pending") == 0, "pending closes left")
        check(any("closing its connections spread" in l for l in a.lines()), "no log line")
        paced = metric(a, "apilb_dials_paced_total")
        print("new clients inside the window: dials took %s s; dials paced (metric): %s" %
              (", ".join("%.2f" % t for t in took), paced))
        check(max(took) < 0.5 and paced == 0,
              "a new client's dial was put off inside the close window: %s s" % took)
        a.check_sanitizers()
    finally:
        stop_all(a, keep, b1, b2)


def only_on(a, backend, n):
    """n connections through a to backend; those that reached another are
    closed."""
    others = []
    conns = on(a, backend, n, others)
    for s in others:
        s.close()
    return conns


def redial_after_loss(conns, b1, b2):
    """Each (port, socket) in conns is a client's lasting connection through
    the apilb at port to b1. b1 is stopped (every connection ends; refused
    from now on) and each client, once its connection is closed, dials
    again through the same apilb, as a kubelet does. Returns the times they
    got through (to b2), the errors, and when b1 stopped."""
    arrived, errors, lock = [], [], threading.Lock()

    def client(port, s):
        ended = closed_by_peer(s, 10)
        s.close()  # the upstream's FIN reached it: the client is done too
        if not ended:
            errors.append("not closed")
            return
        try:
            name = whoami(port, timeout=15)
            with lock:
                arrived.append(time.time())
            if name != b2.name:
                errors.append("reached %s" % name)
        except (OSError, Fail) as e:
            errors.append(repr(e))
    ts = [threading.Thread(target=client, args=c, daemon=True) for c in conns]
    for t in ts:
        t.start()
    b1.stop()
    t0 = time.time()
    for t in ts:
        t.join(30)
    return arrived, errors, t0


@scenario
def paced_dials():
    """An upstream that ends all of its connections in one instant (a killed
    apiserver: FIN on every one): each of its 30 clients dials again at once,
    and apilb spreads those dials over the --redial-spread window (8 s by
    default): the survivor sees them arrive spread, each client gets through."""
    b1, b2 = Backend("127.0.0.2"), Backend("127.0.0.3")
    a = Apilb("--upstream", b1.addr, "--upstream", b2.addr, admin=True)
    keep, arrived, errors = [], [], []
    try:
        conns = only_on(a, b1, 30)
        time.sleep(1.2)  # lasting connections, not short exchanges
        arrived, errors, t0 = redial_after_loss([(a.port, s) for s in conns], b1, b2)
        width, most = spread(arrived)
        print("30 clients reconnecting at once: %d through, the last %.2f s after the loss, over "
              "%.2f s, at most %d in one second; dials paced (metric): %s; errors: %s" %
              (len(arrived), max(arrived) - t0 if arrived else -1, width, most,
               metric(a, "apilb_dials_paced_total"), errors[:3]))
        check(not errors and len(arrived) == 30, "not every client got through")
        check(width >= 2.5, "the dials were not spread (%.2f s)" % width)
        check(most <= 15, "%d dials in one second" % most)
        check(max(arrived) - t0 < 9.5, "a client waited longer than the window")
        check(any("new dials are spread" in l for l in a.lines()), "no log line")
        a.check_sanitizers()
    finally:
        stop_all(a, keep, b1, b2)


@scenario
def paced_dials_slow_answer():
    """A paced dial never waits so long that the client's TLS handshake
    cannot be done in client-go's 10 s: the survivor takes 3 s to answer a
    client's first bytes (a saturated apiserver's handshake), and the 30
    clients of a killed upstream dial again. Their waits are cut to what
    the 10 s leave after 1 s and twice the 3 s (3 s), so every one is
    answered within 9.5 s of the loss, still spread. The binary before this
    change drew waits over the whole 8 s window: the last ones were
    answered after 10 s (handshake timeouts for a kubelet)."""
    b1, b2 = Backend("127.0.0.2"), Backend("127.0.0.3")
    a = Apilb("--upstream", b1.addr, "--upstream", b2.addr, admin=True)
    keep, arrived, errors = [], [], []
    try:
        conns = only_on(a, b1, 30)
        b2.answer_delay = 3.0
        t1 = time.time()
        name = whoami(a.port, timeout=10)  # b2 (least loaded) answers in 3 s: apilb notes it
        first = time.time() - t1
        check(name == b2.name and first >= 2.9, "the slow answer: %s in %.2f s" % (name, first))
        noted = metric(a, 'apilb_upstream_answer_seconds{upstream="%s"}' % b2.addr)
        check(noted is not None and noted >= 2.9, "apilb_upstream_answer_seconds = %s" % noted)
        time.sleep(1.2)  # lasting connections, not short exchanges
        arrived, errors, t0 = redial_after_loss([(a.port, s) for s in conns], b1, b2)
        took = sorted(t - t0 for t in arrived)
        width, most = spread(arrived)
        print("survivor answering in %.2f s (apilb_upstream_answer_seconds %s); 30 clients reconnecting at once: %d through, "
              "answered %.2f-%.2f s after the loss (over %.2f s, at most %d in one second), %d "
              "after 10 s; dials paced (metric): %s; errors: %s" %
              (first, noted, len(arrived), took[0] if took else -1, took[-1] if took else -1, width,
               most, sum(1 for t in took if t >= 10.0), metric(a, "apilb_dials_paced_total"),
               errors[:3]))
        check(not errors and len(arrived) == 30, "not every client got through")
        check(took[-1] < 9.5, "a client was answered %.2f s after the loss: its TLS handshake "
              "would have timed out" % took[-1])
        check(width >= 1.5, "the dials were not spread (%.2f s)" % width)
        check(metric(a, "apilb_dials_paced_total") >= 20, "the dials were not paced")
        a.check_sanitizers()
    finally:
        stop_all(a, keep, b1, b2)


@scenario
def single_close_not_paced():
    """An apiserver that ends one connection of its own (a GOAWAY, a request
    timeout) while it keeps serving its others is no failure: the client's
    next dials are made at once, not put off into the --redial-spread window
    (8 s by default). Only a mass loss opens the window: the same upstream
    ending all of its 6 connections at once does."""
    b1, b2 = Backend("127.0.0.2"), Backend("127.0.0.3")
    a = Apilb("--upstream", b1.addr, "--upstream", b2.addr, admin=True)
    keep = []
    try:
        conns = on(a, b1, 6, keep)
        keep += conns  # closed at the end: half-closed ones would hold apilb's shutdown
        time.sleep(1.2)  # lasting connections, not short exchanges
        with b1.lock:
            victim = b1.conns[0]
        victim.shutdown(socket.SHUT_RDWR)  # the apiserver ends this one
        end = time.time() + 3
        while all(is_open(s) for s in conns) and time.time() < end:
            time.sleep(0.01)
        gone = [s for s in conns if not is_open(s)]
        t0 = time.time()
        took, _ = timed_dials(a, 5, keep)
        paced = metric(a, "apilb_dials_paced_total")
        windows = metric(a, "apilb_dial_pacing_windows_total")
        print("one connection of 6 ended by its upstream (%d seen closed): the next 5 dials took "
              "%s s (%.2f s in all); dials paced (metric): %s, windows: %s" %
              (len(gone), ", ".join("%.2f" % t for t in took), time.time() - t0, paced, windows))
        check(len(gone) == 1, "%d connections closed, not 1" % len(gone))
        check(max(took) < 0.5, "a dial after a single close waited %.2f s" % max(took))
        check(paced == 0, "apilb_dials_paced_total = %s after a single close" % paced)
        check(not any("new dials are spread" in l for l in a.lines()), "the window opened")
        # The 5 remaining and the new ones on b1: all of them end at once.
        mark = len(a.lines())
        b1.stop()
        a.wait_log("new dials are spread", 5, start=mark)
        windows = metric(a, "apilb_dial_pacing_windows_total")
        print("then b1 ended all of its connections at once: pacing windows (metric): %s; %s" %
              (windows, [l for l in a.lines()[mark:] if "new dials are spread" in l][0]))
        check(windows == 1, "apilb_dial_pacing_windows_total = %s after a mass loss" % windows)
        a.check_sanitizers()
    finally:
        stop_all(a, keep, b1, b2)


@scenario
def lost_then_refused():
    """A node with a single connection to an apiserver that is killed sees
    one loss, never a mass of them; it is still one of the clients that all
    dial again in this instant on every node of a fleet. apilb probes the
    upstream that ended the connection (one TCP connect): refused, so the
    apiserver is gone, the window of paced dials opens, and this client's
    next dial waits for its turn in it (not longer than --redial-spread, 8 s),
    then reaches the other upstream."""
    b1, b2 = Backend("127.0.0.2"), Backend("127.0.0.3")
    a = Apilb("--upstream", b1.addr, "--upstream", b2.addr, admin=True)
    keep = []
    try:
        (only,) = on(a, b1, 1, keep)
        for s in keep:
            s.close()  # a client's close is no loss
        keep = []
        time.sleep(1.2)  # a lasting connection
        b1.stop()
        check(closed_by_peer(only, 5), "the connection to the killed upstream stayed open")
        only.close()
        t0 = time.time()
        name, s = whoami(a.port, keep=True, timeout=10)
        took = time.time() - t0
        keep.append(s)
        windows = metric(a, "apilb_dial_pacing_windows_total")
        gone = metric(a, 'apilb_loss_probes_total{verdict="gone"}')
        paced = metric(a, "apilb_dials_paced_total")
        line = [l for l in a.lines() if "new dials are spread" in l]
        print("one lasting connection lost to a killed upstream: probe verdicts gone %s; the next "
              "dial reached %s after %.2f s; dials paced %s, pacing windows %s; %s" %
              (gone, name, took, paced, windows, line[0] if line else "no log line"))
        check(gone == 1, "apilb_loss_probes_total{verdict=gone} = %s" % gone)
        check(name == b2.name, "the next dial did not reach the other upstream")
        check(windows == 1, "apilb_dial_pacing_windows_total = %s" % windows)
        check(line and "refuses new ones" in line[0], "no log line")
        check(took < 8.5, "the next dial waited %.2f s, longer than the window" % took)
        check(paced <= 1, "apilb_dials_paced_total = %s" % paced)
        a.check_sanitizers()
    finally:
        stop_all(a, keep, b1, b2)


@scenario
def killed_listener_closes_last():
    """A killed process's connections are closed before its listening socket
    (the kernel releases a dying process's files newest first): the probe
    apilb makes on the FIN of the lost connection can still be accepted into
    the listener's queue, and is reset a moment later when the listener goes.
    apilb counts a probe alive only when it stays open 100 ms, so this one
    says gone, and the client's next dial is paced."""
    b1, b2 = Backend("127.0.0.2"), Backend("127.0.0.3")
    a = Apilb("--upstream", b1.addr, "--upstream", b2.addr, admin=True)
    keep = []
    try:
        (only,) = on(a, b1, 1, keep)
        for s in keep:
            s.close()
        keep = []
        time.sleep(1.2)  # a lasting connection
        b1.frozen = True  # accepts no more; the kernel still completes handshakes
        time.sleep(0.1)
        b1.close_all()  # the connections go first
        check(closed_by_peer(only, 5), "the lost connection stayed open")
        time.sleep(0.03)
        b1.stop()  # then the listener, resetting what it queued
        only.close()
        name, s = whoami(a.port, keep=True, timeout=10)
        keep.append(s)
        verdicts = {v: metric(a, 'apilb_loss_probes_total{verdict="%s"}' % v)
                    for v in ("gone", "alive", "unknown")}
        windows = metric(a, "apilb_dial_pacing_windows_total")
        print("connections closed 30 ms before the listener: probe verdicts %s, pacing windows %s, "
              "the next dial reached %s" % (verdicts, windows, name))
        check(verdicts["gone"] == 1, "the probe did not find the upstream gone: %s" % verdicts)
        check(windows == 1, "apilb_dial_pacing_windows_total = %s" % windows)
        check(name == b2.name, "the next dial did not reach the other upstream")
        a.check_sanitizers()
    finally:
        stop_all(a, keep, b1, b2)


@scenario
def one_connection_nodes_spread():
    """Twelve nodes, each with one apilb and one lasting connection, all on
    the apiserver that is killed: every node sees only its own loss. The
    kubelets all dial again in the same instant; through apilb (--redial-spread
    8 s, the default) they reach the survivor spread over the window, not in
    one second, and every one gets through. The same fleet with
    --redial-spread 0 shows the storm it replaces."""
    def fleet(extra):
        b1, b2 = Backend("127.0.0.2"), Backend("127.0.0.3")
        nodes, conns, keep = [], [], []
        try:
            for _ in range(12):
                a = Apilb("--upstream", b1.addr, "--upstream", b2.addr, *extra)
                nodes.append(a)
                (c,) = on(a, b1, 1, keep)
                conns.append((a, c))
            for s in keep:
                s.close()
            keep = []
            time.sleep(1.2)  # lasting connections
            arrived, errors, t0 = redial_after_loss([(a.port, c) for a, c in conns], b1, b2)
            for a in nodes:
                a.check_sanitizers()
            width, most = spread(arrived)
            return len(arrived), width, most, (max(arrived) - t0 if arrived else -1), errors
        finally:
            for s in keep:
                s.close()
            for a in nodes:
                a.stop()
            b1.stop()
            b2.stop()
    n0, w0, m0, last0, e0 = fleet(["--redial-spread", "0"])
    print("12 one-connection nodes, --redial-spread 0: %d through over %.2f s, at most %d in one "
          "second; errors %s" % (n0, w0, m0, e0[:3]))
    n, width, most, last, errors = fleet([])
    print("12 one-connection nodes, defaults: %d through over %.2f s, the last %.2f s after the "
          "loss, at most %d in one second; errors %s" % (n, width, last, most, errors[:3]))
    check(not e0 and n0 == 12, "without pacing not every client got through")
    check(m0 >= 10, "without pacing the dials were spread anyway (%d in the busiest second): "
          "the comparison shows nothing" % m0)
    check(not errors and n == 12, "not every client got through")
    check(width >= 2.5, "the dials were not spread (%.2f s)" % width)
    check(most <= 8, "%d dials in one second" % most)
    check(last < 9.5, "a client waited longer than the window")


if __name__ == "__main__":
    run()
