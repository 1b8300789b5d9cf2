# SPDX-License-Identifier: Apache-2.0
"""Turns the raw samples of run.sh into latest.json, latest.md and latest.svg:
medians with min-max per proxy and metric, the ratios apilb/nginx,
apilb/haproxy and apilb/direct, and the targets of the performance issue."""

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
    ("idle_rss_kib", "idle RSS", "KiB", False),
    ("idle_anon_kib", "idle RSS, private (anonymous) part", "KiB", False),
]
PROXIES = ["direct", "nginx", "haproxy", "apilb"]


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
    for proxy in PROXIES[1:] + ["uring_relay"]:
        for q in ("p50_us", "p99_us"):
            d, p = samples.get(("direct", q), []), samples.get((proxy, q), [])
            if d and p:
                samples[(proxy, "added_" + q)] = [b - a for a, b in zip(d, p)]
    table = {}
    for m, _, _, _ in metrics:
        for proxy in PROXIES:
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
    # The floor: uringrelay.c, the cheapest user-space relay (run.sh).
    floor = {}
    for q in ("added_p50_us", "added_p99_us"):
        v = samples.get(("uring_relay", q))
        best = [table[q][o]["median"] for o in ("nginx", "haproxy") if o in table.get(q, {})]
        if v and best:
            med, b = statistics.median(v), min(best)
            floor[q] = {"median": med, "min": min(v), "max": max(v),
                        "vs_best_of_nginx_haproxy": med / b if b else None}
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": "%s, %d CPUs, %s" % (platform.node(), os.cpu_count(), platform.release()),
            "mode": "smoke" if smoke else "full",
            "repetitions": max((c["n"] for r in table.values() for c in r.values()), default=0)}
    doc = {"meta": meta, "results": table, "ratios": ratios, "targets": targets,
           "uring_relay_floor": floor}
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
    if floor:
        lines += ["", "Latency floor: a minimal io_uring relay (tests/bench/uringrelay.c, one system "
                  "call per direction, no balancing), pinned like the proxies:", "",
                  "| added latency | io_uring relay (us) | vs better of nginx/HAProxy | apilb vs it |",
                  "|---|---|---|---|"]
        for q, label in (("added_p50_us", "p50"), ("added_p99_us", "p99")):
            if q in floor:
                c = floor[q]
                a = table.get(q, {}).get("apilb")
                lines.append("| %s | %.4g (%.4g-%.4g) | %s | %s |" % (
                    label, c["median"], c["min"], c["max"], fmt(c["vs_best_of_nginx_haproxy"]),
                    fmt(a["median"] / c["median"] if a and c["median"] else None)))
    with open(os.path.join(out, "latest.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    svg(ratios, metrics, meta, os.path.join(out, "latest.svg"))
    print("\n".join(lines))


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
