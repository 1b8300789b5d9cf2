#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The fleet's projection to a larger cluster (tests/fleet/README.md, "The
5,000-node projection"): reads the results.json of fleet runs at several N,
fits each figure as a function of N and projects it to --to nodes.

  project.py results/A/results.json results/B/results.json ... [--to 5000]
             [--out DIR]   (DIR/projection.json and DIR/projection.md)

Per scenario and system it fits two models by least squares and reports
both: linear, y = a + b N (what a per-node rate sums to: health checks,
memory, CPU, a storm that is a share of all nodes reconnecting), and a
power law, y = c N^p on the runs with y > 0 (p says how the figure grows:
p near 1 is linear, near 0 flat). The fit is only as good as the runs: the
summary gives the runs it used, and R^2 for each model."""

import argparse
import json
import math
import os
import sys

# figure name -> how to read it from one run's system entry
FIGURES = {
    "storm_peak_new_conns_per_s": "the storm: peak new connections per second at a survivor",
    "checks_per_s_per_apiserver": "health checks per second arriving at one apiserver",
    "fair_share_converged_s": "seconds after the return until every apiserver holds its fair "
                              "share within 15 %",
    "lease_gap_max_s": "the longest lease gap (s)",
    "pss_mib_sum": "the fleet's load balancers' memory (PSS, MiB, summed)",
    "cpu_s_sum": "the fleet's load balancers' CPU over the window (s, summed)",
}


def figure(run, sys_, v, name):
    if name == "storm_peak_new_conns_per_s":
        faulted = {"as%d" % k for k in run.get("fault_apiservers", [])}
        xs = [n for a, n in v["storm_peak_new_conns_per_s"].items()
              if a not in faulted or run["scenario"] == "rolling"]
        return max(xs) if xs else None
    if name == "checks_per_s_per_apiserver":
        kind = {"apilb": "readyz", "haproxy": "healthz"}.get(sys_)
        xs = [c[kind]["per_s"] for c in run["health_checks"].values() if kind in c]
        return max(xs) if xs else None
    if name == "lease_gap_max_s":
        return v["lease_gap_s"]["max"]
    return v.get(name)


def median(ys):
    ys = sorted(ys)
    m = len(ys) // 2
    return ys[m] if len(ys) % 2 else round((ys[m - 1] + ys[m]) / 2, 3)


def fit_linear(pts):
    n = len(pts)
    if n < 2:
        return None
    mx = sum(x for x, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    if sxx == 0:
        return None
    b = sum((x - mx) * (y - my) for x, y in pts) / sxx
    a = my - b * mx
    return {"a": a, "b": b, "r2": r2(pts, lambda x: a + b * x)}


def fit_power(pts):
    pos = [(x, y) for x, y in pts if x > 0 and y > 0]
    lin = fit_linear([(math.log(x), math.log(y)) for x, y in pos])
    if lin is None:
        return None
    c, p = math.exp(lin["a"]), lin["b"]
    return {"c": c, "p": p, "r2": r2(pos, lambda x: c * x ** p)}


def r2(pts, f):
    my = sum(y for _, y in pts) / len(pts)
    tot = sum((y - my) ** 2 for _, y in pts)
    res = sum((y - f(x)) ** 2 for x, y in pts)
    return round(1 - res / tot, 3) if tot else None


def project(paths, to):
    """{scenario: {system: {figure: {points, linear, power, at_N}}}}"""
    points = {}
    used = []
    for path in paths:
        with open(path) as f:
            res = json.load(f)
        n = res["nodes_per_system"]
        used.append({"path": path, "nodes": n, "date": res["date"],
                     "load_before": res.get("load_before"), "load_after": res.get("load_after")})
        for run in res["runs"]:
            for sys_, v in run["systems"].items():
                for name in FIGURES:
                    y = figure(run, sys_, v, name)
                    if y is not None:
                        points.setdefault(run["scenario"], {}).setdefault(
                            sys_, {}).setdefault(name, []).append((n, y))
    out = {}
    for sc, by in points.items():
        for sys_, figs in by.items():
            for name, pts in figs.items():
                # the median at each N (repetitions), then the fits
                per_n = {}
                for x, y in pts:
                    per_n.setdefault(x, []).append(y)
                med = sorted((x, median(ys)) for x, ys in per_n.items())
                lin, pw = fit_linear(med), fit_power(med)
                e = {"points": med, "linear": lin, "power": pw}
                if lin:
                    e["linear_at_N"] = round(lin["a"] + lin["b"] * to, 1)
                if pw:
                    e["power_at_N"] = round(pw["c"] * to ** pw["p"], 1)
                out.setdefault(sc, {}).setdefault(sys_, {})[name] = e
    return {"to_nodes": to, "runs": used, "figures": FIGURES, "projection": out}


def markdown(p):
    out = ["# Projection to %d nodes" % p["to_nodes"], "",
           "From %s." % "; ".join("%s (N=%d, %s, load %s -> %s)" % (
               os.path.dirname(u["path"]) or ".", u["nodes"], u["date"], u["load_before"],
               u["load_after"]) for u in p["runs"]), "",
           "| scenario | system | figure | measured (N: value) | linear a + bN (R^2) | "
           "power c N^p (R^2) | at %d: linear / power |" % p["to_nodes"],
           "|---|---|---|---|---|---|---|"]
    for sc, by in sorted(p["projection"].items()):
        for sys_, figs in sorted(by.items()):
            for name, e in figs.items():
                lin, pw = e["linear"], e["power"]
                out.append("| %s | %s | %s | %s | %s | %s | %s / %s |" % (
                    sc, sys_, name, ", ".join("%d: %s" % (x, y) for x, y in e["points"]),
                    "%.3g + %.3g N (%s)" % (lin["a"], lin["b"], lin["r2"]) if lin else "-",
                    "%.3g N^%.2f (%s)" % (pw["c"], pw["p"], pw["r2"]) if pw else "-",
                    e.get("linear_at_N", "-"), e.get("power_at_N", "-")))
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", nargs="+", help="results.json of fleet runs at different N")
    ap.add_argument("--to", type=int, default=5000, help="the cluster size to project to")
    ap.add_argument("--out", help="directory for projection.json and projection.md")
    a = ap.parse_args()
    if a.to < 1:
        ap.error("--to: %d is not a positive node count" % a.to)
    for path in a.results:
        if not os.path.isfile(path):
            ap.error("%s: no such results.json" % path)
    try:
        p = project(a.results, a.to)
    except (ValueError, KeyError) as e:
        print("project.py: a results.json is not a fleet result (schema 1): %s" % e,
              file=sys.stderr)
        return 2
    md = markdown(p)
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "projection.json"), "w") as f:
            json.dump(p, f, indent=1)
        with open(os.path.join(a.out, "projection.md"), "w") as f:
            f.write(md)
    sys.stdout.write(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
