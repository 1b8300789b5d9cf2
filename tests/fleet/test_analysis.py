#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The fleet's analysis on made-up statistics (no root, no processes): the
fair-share convergence and the medians over repetitions. CTest runs it as
fleet_analysis."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fleet  # noqa: E402

FAILS = []


def check(name, got, want):
    ok = got == want
    print("%s %s: got %r, want %r" % ("PASS" if ok else "FAIL", name, got, want))
    if not ok:
        FAILS.append(name)


def main():
    # Two apiservers, 40 connections: all on as1 until t=20, then 20/20.
    # as2's statistics skip t=5..12 (a starved apiserver writes no line for
    # those seconds): those seconds must not count as "as1 alone holds its
    # fair share".
    as1 = [(t + 0.3, 40 if t < 20 else 20) for t in range(40)]
    as2 = [(t + 0.6, 0 if t < 20 else 20) for t in range(40) if not 5 <= t <= 12]
    check("a skipped statistics line is no convergence",
          fleet.converged({"as1": as1, "as2": as2}, 100.0, 100.0, 140.0, 40), 21.0)
    # never balanced: None
    check("never within the run",
          fleet.converged({"as1": [(t, 30) for t in range(30)],
                           "as2": [(t, 10) for t in range(30)]}, 100.0, 100.0, 130.0, 40), None)
    # an apiserver gone for good (its lines end) is no longer live
    as3 = [(t, 20) for t in range(10)]
    check("a removed apiserver stops counting",
          fleet.converged({"as1": [(t, 20) for t in range(30)],
                           "as2": [(t, 0 if t < 15 else 20) for t in range(30)],
                           "as3": as3}, 100.0, 100.0, 130.0, 60), 15.0)
    # The storm by arrival: a stalled event loop wrote one line for t=101
    # holding 9 connections that arrived over 101-103 (4, 3, 2); the peak is
    # the 4 of one second, not the 9 of the line.
    rows = [{"t": 100.5, "new": {"apilb": 1}, "new_at": {"apilb": {"100": 1}}},
            {"t": 103.9, "new": {"apilb": 9},
             "new_at": {"apilb": {"101": 4, "102": 3, "103": 2}}},
            {"t": 104.5, "new": {}, "new_at": {}}]
    peak, series = fleet.new_conns(rows, "apilb", 100.0, 95.0, 110.0)
    check("storm by arrival second", peak, 4)
    check("the series by arrival second", [n for t, n in series if 5 <= t <= 9], [1, 4, 3, 2, 0])
    old = [{k: v for k, v in r.items() if k != "new_at"} for r in rows]
    check("statistics without new_at: the line's count", fleet.new_conns(old, "apilb",
                                                                        100.0, 95.0, 110.0)[0], 9)
    runs = [{"scenario": "kill", "fault_apiservers": [1], "health_checks": {},
             "systems": {"apilb": {
                 "notready_nodes": n, "lease_gap_s": {"max": g, "p99": g},
                 "lease_failed": 0, "lease_failed_beyond_first_on_dying_conn": 0,
                 "lease_latency_s": {"p99": 0.1}, "cpu_s_sum": 1.0,
                 "storm_peak_new_conns_per_s": {"as1": 99, "as2": st, "as3": 1},
                 "fair_share_converged_s": c}}}
            for n, g, st, c in ((0, 12.0, 5, None), (1, 14.0, 9, 30.0), (0, 13.0, 7, None))]
    m = fleet.medians(runs)["kill"]["apilb"]
    check("median lease gap", m["lease_gap_max_s"]["median"], 13.0)
    check("storm median at a survivor (not the failed one)",
          m["storm_peak_at_survivor"]["median"], 7)
    check("a figure missing in two repetitions", m["fair_share_converged_s"],
          {"median": 30.0, "n": 1, "missing": 2})
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
