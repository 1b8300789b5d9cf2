# SPDX-License-Identifier: Apache-2.0
"""Turns the raw samples of run.sh into latest.json, latest.md and latest.svg:
medians with min-max per proxy and metric, the ratios apilb/nginx,
apilb/haproxy and apilb/direct, the targets of the performance issue, and
the floors (what the measuring-stick relays reach), and the whole machine's
CPU per connection and per request, which bounds the rates."""

import datetime
import json
import os
import platform
import statistics
import sys

METRICS = [  # name, label, unit, higher is better
    ("bulk_gbps", "bulk throughput", "Gbit/s", True),
    ("cpu_s_per_gb", "proxy CPU per GB", "s/GB", False),
    ("p50_us", "round trip p50", "us", False),
    ("p99_us", "round trip p99", "us", False),
    ("added_p50_us", "added latency p50", "us", False),
    ("added_p99_us", "added latency p99", "us", False),
    ("conns_per_s", "new connections", "conn/s", True),
    ("cpu_us_per_conn", "proxy CPU per connection", "us", False),
    ("http_rps", "keep-alive requests (wrk)", "req/s", True),
    ("stall_mib", "taken for an upstream that reads nothing", "MiB", False),
    ("idle_rss_kib", "idle RSS", "KiB", False),
    ("idle_anon_kib", "idle RSS, private (anonymous) part", "KiB", False),
]
PROXIES = ["direct", "nginx", "haproxy", "apilb"]
FLOORS = [  # run.sh's measuring sticks: name, what it is
    ("uring_relay", "io_uring relay (user space, one thread, one system call per direction)"),
    ("splice_relay", "splice relay (user space, a thread per direction)"),
    ("sockmap_relay", "sockmap relay (in the kernel, no process on the path)"),
]
FLOOR_METRICS = [("bulk_gbps", True), ("cpu_s_per_gb", False), ("added_p50_us", False),
                 ("added_p99_us", False), ("http_rps", True), ("stall_mib", False)]
# The rates bounded by CPU: rate metric, the machine's CPU per operation, label.
RATES = [("conns_per_s", "conn", "new connections"), ("http_rps", "req", "keep-alive requests")]


def main():
    raw, out = sys.argv[1], sys.argv[2]
    smoke = "--smoke" in sys.argv
    samples = {}
    with open(raw) as f:
        for line in f:
            r = json.loads(line)
            samples.setdefault((r["proxy"], r["metric"]), []).append(float(r["value"]))
    rss_metrics = sorted({m for _, m in samples if m.startswith("rss_per_conn_b_")},
                         key=lambda m: int(m.rsplit("_", 1)[1]))
    metrics = list(METRICS) + [(m, "RSS per idle conn at %s" % m.rsplit("_", 1)[1], "B", False)
                               for m in rss_metrics]
    # Added latency per repetition: proxy minus direct of the same repetition.
    for proxy in PROXIES[1:] + [f for f, _ in FLOORS]:
        for q in ("p50_us", "p99_us"):
            d, p = samples.get(("direct", q), []), samples.get((proxy, q), [])
            if d and p:
                samples[(proxy, "added_" + q)] = [b - a for a, b in zip(d, p)]
    table = {}
    # Recorded for the floors and rate tables only, not rows of the main table.
    extra = ["%s_%s" % (k, op) for _, op, _ in RATES for k in ("sys_us_per", "busy_pct")]
    extra.append("stall_capped")
    for m in [m for m, _, _, _ in metrics] + extra:
        for proxy in PROXIES + [f for f, _ in FLOORS]:
            v = samples.get((proxy, m))
            if v:
                table.setdefault(m, {})[proxy] = {"median": statistics.median(v), "min": min(v),
                                                  "max": max(v), "n": len(v)}
    ratios = {}
    for m, _, _, higher in metrics:
        row = table.get(m, {})
        if "apilb" not in row:
            continue
        a = row["apilb"]["median"]
        r = {}
        for other in ("nginx", "haproxy", "direct"):
            if other in row and row[other]["median"]:
                r[other] = a / row[other]["median"]
        best = [row[o]["median"] for o in ("nginx", "haproxy") if o in row]
        if best:
            b = max(best) if higher else min(best)
            r["best_of_nginx_haproxy"] = a / b if b else None
        ratios[m] = r
    targets = []

    def target(name, metric, op, bound, against="best_of_nginx_haproxy", value=None):
        v = value if value is not None else ratios.get(metric, {}).get(against)
        if v is None:
            return
        ok = v >= bound if op == ">=" else v <= bound
        targets.append({"target": name, "value": round(v, 3), "bound": "%s %s" % (op, bound),
                        "met": ok})

    target("bulk throughput vs better of nginx/HAProxy", "bulk_gbps", ">=", 1.5)
    target("CPU per GB vs better of nginx/HAProxy", "cpu_s_per_gb", "<=", 0.5)
    target("added latency p50 vs better of nginx/HAProxy", "added_p50_us", "<=", 0.8)
    target("added latency p99 vs better of nginx/HAProxy", "added_p99_us", "<=", 0.8)
    target("new connections/s vs better of nginx/HAProxy", "conns_per_s", ">=", 1.1)
    target("keep-alive requests/s vs better of nginx/HAProxy", "http_rps", ">=", 1.1)
    if "idle_rss_kib" in table and "apilb" in table["idle_rss_kib"]:
        target("idle RSS (MiB)", None, "<=", 4,
               value=table["idle_rss_kib"]["apilb"]["median"] / 1024)
    if rss_metrics and "apilb" in table.get(rss_metrics[-1], {}):
        target("RSS per idle connection at %s (KiB)" % rss_metrics[-1].rsplit("_", 1)[1], None,
               "<=", 1.0, value=table[rss_metrics[-1]]["apilb"]["median"] / 1024)
    floors = floor_table(table)
    costs = rate_costs(table)
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": "%s, %d CPUs, %s, TCP congestion control %s" % (
                platform.node(), os.cpu_count(), platform.release(), congestion_control()),
            "mode": "smoke" if smoke else "full",
            "repetitions": max((c["n"] for r in table.values() for c in r.values()), default=0)}
    doc = {"meta": meta, "results": table, "ratios": ratios, "targets": targets,
           "floors": floors, "rate_costs": costs}
    with open(os.path.join(out, "latest.json"), "w") as f:
        json.dump(doc, f, indent=1)
    lines = ["Benchmark %s (%s, %d repetitions), %s." % (meta["date"], meta["mode"],
                                                          meta["repetitions"], meta["machine"]),
             "", "| metric | direct | nginx | HAProxy | apilb | apilb/nginx | apilb/HAProxy | apilb/direct |",
             "|---|---|---|---|---|---|---|---|"]

    def cell(m, p):
        c = table.get(m, {}).get(p)
        if not c:
            return "-"
        return "%.4g (%.4g-%.4g)" % (c["median"], c["min"], c["max"])

    for m, label, unit, _ in metrics:
        if m not in table:
            continue
        r = ratios.get(m, {})
        lines.append("| %s (%s) | %s | %s | %s | %s | %s | %s | %s |" % (
            label, unit, cell(m, "direct"), cell(m, "nginx"), cell(m, "haproxy"),
            cell(m, "apilb"), fmt(r.get("nginx")), fmt(r.get("haproxy")), fmt(r.get("direct"))))
    lines += ["", "| target | measured | bound | met |", "|---|---|---|---|"]
    for t in targets:
        lines.append("| %s | %s | %s | %s |" % (t["target"], t["value"], t["bound"],
                                               "yes" if t["met"] else "**no**"))
    lines += floor_lines(floors) + cost_lines(costs)
    with open(os.path.join(out, "latest.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    svg(ratios, metrics, meta, os.path.join(out, "latest.svg"))
    print("\n".join(lines))


def best_of(table, m, higher):
    """The better of nginx's and HAProxy's medians of m, or None."""
    v = [table[m][o]["median"] for o in ("nginx", "haproxy") if o in table.get(m, {})]
    return (max(v) if higher else min(v)) if v else None


def congestion_control():
    """The host's default TCP congestion control: nginx's and HAProxy's on
    every leg here, apilb's on the legs that leave the host (none here)."""
    try:
        with open("/proc/sys/net/ipv4/tcp_congestion_control") as f:
            return f.read().strip()
    except OSError:
        return "unknown"


def floor_table(table):
    """Per measuring stick (and apilb, to compare) and metric: its median, its
    ratio to the better of nginx and HAProxy (the ratio the targets are stated
    in), and whether it took the whole stall cap."""
    floors = {}
    for f in ["apilb"] + [f for f, _ in FLOORS]:
        for m, higher in FLOOR_METRICS:
            c, b = table.get(m, {}).get(f), best_of(table, m, higher)
            if c and b:
                floors.setdefault(f, {})[m] = dict(c, vs_best_of_nginx_haproxy=c["median"] / b)
        if f in floors and "stall_mib" in floors[f]:
            floors[f]["stall_mib"]["capped"] = bool(
                table.get("stall_capped", {}).get(f, {}).get("median"))
    return floors


def rate_costs(table):
    """The rates are bound by CPU (the machine is busy throughout: see busy):
    a rate is about CPUs / (the machine's CPU per operation), so 1.1x the
    better proxy's rate needs the machine's CPU per operation at or below the
    better proxy's / 1.1. Per rate: each run's figure, and that bound."""
    costs = {}
    for rate, op, _ in RATES:
        sysm, busym = "sys_us_per_" + op, "busy_pct_" + op
        row, srow = table.get(rate, {}), table.get(sysm, {})
        better = max((o for o in ("nginx", "haproxy") if o in row and o in srow),
                     key=lambda o: row[o]["median"], default=None)
        if better is None or "apilb" not in srow:
            continue
        costs[op] = {"us": {p: c["median"] for p, c in srow.items()}, "better": better,
                     "needed_us": srow[better]["median"] / 1.1,
                     "busy_pct": {p: c["median"] for p, c in table.get(busym, {}).items()}}
    return costs


def floor_lines(floors):
    if len(floors) < 2:  # apilb alone: no measuring stick ran
        return []
    out = ["", "Floors: relays written only to measure (tests/bench/*relay.c, no balancing, no "
           "limits), in the same run; each cell is the median and its ratio to the better of "
           "nginx and HAProxy (the targets' ratio):", "",
           "| relay | bulk (Gbit/s) | CPU per GB (s/GB) | added latency p50 (us) | "
           "added latency p99 (us) | keep-alive requests (req/s) | "
           "held for a stalled upstream (MiB) |",
           "|---|---|---|---|---|---|---|"]

    def cell(c):
        if not c:
            return "-"
        if c.get("capped"):
            return "%.4g: the cap, no bound" % c["median"]
        return "%.4g (%sx)" % (c["median"], fmt(c["vs_best_of_nginx_haproxy"]))

    rows = [("apilb", "apilb")] + [(f, label) for f, label in FLOORS if f in floors]
    for name, label in rows:
        out.append("| %s | %s |" % (label, " | ".join(
            cell(floors.get(name, {}).get(m)) for m, _ in FLOOR_METRICS)))
    return out


def cost_lines(costs):
    if not costs:
        return []
    out = ["", "The rates and the CPU they take: the whole machine's CPU per operation "
           "(every process, /proc/stat), and how busy the machine was. Near 100 % busy a "
           "rate is the CPUs over this figure, so 1.1x the better proxy's rate needs at most "
           "its figure / 1.1:", "",
           "| workload | direct (us) | nginx (us) | HAProxy (us) | apilb (us) | "
           "needed for 1.1x (us) | machine busy, apilb run |", "|---|---|---|---|---|---|---|"]
    for _, op, label in RATES:
        c = costs.get(op)
        if c:
            out.append("| %s | %s | %s | %s | %s | %.4g | %s |" % (
                label, *("%.4g" % c["us"][p] if p in c["us"] else "-" for p in PROXIES),
                c["needed_us"],
                "%.0f %%" % c["busy_pct"]["apilb"] if "apilb" in c["busy_pct"] else "-"))
    return out


def fmt(v):
    return "-" if v is None else "%.2f" % v


def svg(ratios, metrics, meta, path):
    """Bars: apilb relative to the better of nginx and HAProxy (1.0 = as good),
    oriented so that longer is better for every metric."""
    rows = []
    for m, label, _, higher in metrics:
        v = ratios.get(m, {}).get("best_of_nginx_haproxy")
        if v:
            rows.append((label, v if higher else 1 / v))
    w, bar_h, left = 760, 24, 260
    h = 60 + bar_h * len(rows)
    scale = (w - left - 60) / max([2.0] + [v for _, v in rows])
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif" font-size="12">' % (w, h),
           '<text x="10" y="20" font-size="14">apilb vs the better of nginx and HAProxy '
           '(x, higher is better) - %s</text>' % meta["date"]]
    x1 = left + scale
    out.append('<line x1="%.1f" y1="30" x2="%.1f" y2="%d" stroke="#888" stroke-dasharray="4"/>'
               % (x1, x1, h - 10))
    for i, (label, v) in enumerate(rows):
        y = 40 + i * bar_h
        color = "#2a7" if v >= 1 else "#d54"
        out.append('<text x="%d" y="%d" text-anchor="end">%s</text>' % (left - 8, y + 15, label))
        out.append('<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>'
                   % (left, y + 3, v * scale, bar_h - 6, color))
        out.append('<text x="%.1f" y="%d">%.2fx</text>' % (left + v * scale + 4, y + 15, v))
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
