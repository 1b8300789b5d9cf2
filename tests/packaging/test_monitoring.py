# SPDX-License-Identifier: Apache-2.0
"""The chart's monitoring objects: the ServiceMonitor, PodMonitor,
PrometheusRule and Grafana dashboard each render with its value on, validated
against the Prometheus Operator's schemas, and nothing when off; the alert
rules pass `promtool check rules` and `promtool test rules`
(alerts_test.yaml: each alert fires where it must and not where it must not);
every dashboard expression parses as PromQL (promtool, as recording rules)
and names only metrics a running apilb exports, like the rules, so neither
can rot when a metric is renamed."""

import atexit
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("APILB_SOURCE_DIR", os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
from harness import Apilb, unreachable_kubeconfig  # noqa: E402

import k8stools  # noqa: E402

CHART = os.path.join(SRC, "helm", "apilb")
DASHBOARD = os.path.join(CHART, "files", "apilb-dashboard.json")
HELM, NODE_PATH = k8stools.find(SRC)
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
TMP = tempfile.mkdtemp(prefix="apilb-mon-")
atexit.register(shutil.rmtree, TMP, True)
KINDS = ("ServiceMonitor", "PodMonitor", "PrometheusRule")
NODE_ADMIN = ["--set", "adminListen=$(HOST_IP):9444"]


def fail(msg):
    print("FAIL " + msg)
    sys.exit(1)


def render(*args):
    """The chart's objects as a list of dicts (validated), or fail."""
    p = subprocess.run([HELM, "template", "apilb", CHART, "--namespace", "kube-system", *args],
                       capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        fail("helm template %s: %s" % (" ".join(args), p.stderr.strip()))
    v = subprocess.run(["node", os.path.join(HERE, "validate.js")], input=p.stdout,
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, NODE_PATH=NODE_PATH))
    if v.returncode != 0:
        fail("%s: schema validation: %s" % (" ".join(args), v.stderr.strip()))
    j = subprocess.run(["node", "-e",
                        "const y=require('js-yaml');const fs=require('fs');"
                        "console.log(JSON.stringify(y.loadAll(fs.readFileSync(0,'utf8'))"
                        ".filter(d=>d)))"],
                       input=p.stdout, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, NODE_PATH=NODE_PATH), check=True)
    return json.loads(j.stdout)


def kinds(objs):
    return [o["kind"] for o in objs]


def check_on_off():
    off = render(*NODE_ADMIN)
    for k in KINDS:
        if k in kinds(off):
            fail("%s rendered with its value off" % k)
    if any(o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-dashboard") for o in off):
        fail("the dashboard ConfigMap rendered with grafanaDashboard.enabled=false")
    cases = {
        "ServiceMonitor": ["--set", "metrics.serviceMonitor.enabled=true",
                           "--set", "metrics.serviceMonitor.interval=15s",
                           "--set", "metrics.serviceMonitor.labels.release=kps"],
        "PodMonitor": ["--set", "metrics.podMonitor.enabled=true",
                       "--set", "metrics.podMonitor.labels.release=kps"],
        "PrometheusRule": ["--set", "prometheusRule.enabled=true",
                           "--set", "prometheusRule.labels.release=kps"],
    }
    for kind, args in cases.items():
        objs = render(*NODE_ADMIN, *args)
        mine = [o for o in objs if o["kind"] in KINDS]
        if kinds(mine) != [kind]:
            fail("%s on: rendered %s" % (kind, kinds(mine)))
        if mine[0]["metadata"]["labels"].get("release") != "kps":
            fail("%s: the labels value is not on the object" % kind)
        ds = [o for o in objs if o["kind"] == "DaemonSet"][0]
        c = ds["spec"]["template"]["spec"]["containers"][0]
        if "--admin-listen=$(HOST_IP):9444" not in c["args"] or \
                c.get("env", [{}])[0].get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") \
                != "status.hostIP":
            fail("%s: apilb does not listen on the node's address from the downward API" % kind)
        if "host" in c["livenessProbe"]["httpGet"]:
            fail("%s: the probe names a host although apilb listens on the node's address" % kind)
        if kind == "ServiceMonitor":
            svc = [o for o in objs if o["kind"] == "Service"]
            if not svc or svc[0]["spec"].get("clusterIP") != "None" or \
                    svc[0]["spec"]["ports"][0]["port"] != 9444:
                fail("ServiceMonitor: no headless Service on the admin port")
            if mine[0]["spec"]["endpoints"][0]["interval"] != "15s":
                fail("ServiceMonitor: interval value not used")
        if kind == "PodMonitor":
            rl = mine[0]["spec"]["podMetricsEndpoints"][0]["relabelings"]
            if not any(r.get("targetLabel") == "__address__" and
                       r.get("replacement", "").endswith(":9444") for r in rl):
                fail("PodMonitor: the target address is not the pod's IP and the admin port")
        if any("containerPort" in json.dumps(o) for o in objs):
            fail("%s: a container port (a hostPort with hostNetwork) would stop the surge pod"
                 % kind)
    objs = render(*NODE_ADMIN, "--set", "grafanaDashboard.enabled=true",
                  "--set", "grafanaDashboard.namespace=monitoring")
    cm = [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-dashboard")]
    if len(cm) != 1 or cm[0]["metadata"]["labels"].get("grafana_dashboard") != "1" or \
            cm[0]["metadata"]["namespace"] != "monitoring":
        fail("grafanaDashboard on: no ConfigMap with the sidecar's label in its namespace")
    if json.loads(cm[0]["data"]["apilb-dashboard.json"]) != json.load(open(DASHBOARD)):
        fail("the ConfigMap's dashboard differs from files/apilb-dashboard.json")
    if json.load(open(os.path.join(SRC, "docs", "apilb-dashboard.json"))) != json.load(open(DASHBOARD)):
        fail("docs/apilb-dashboard.json differs from the chart's")
    # Monitors that Prometheus could not scrape are refused with the fix.
    for args, want in (([], "set adminListen to \"$(HOST_IP):9444\""),
                       (["--set", "adminListen=off"], "adminListen is off")):
        p = subprocess.run([HELM, "template", "apilb", CHART, *args,
                            "--set", "metrics.serviceMonitor.enabled=true"],
                           capture_output=True, text=True, timeout=120)
        if p.returncode == 0 or want not in p.stderr:
            fail("a ServiceMonitor with %s: helm said %r" % (args or "the loopback admin",
                                                             p.stderr.strip()))
    p = subprocess.run([HELM, "template", "apilb", CHART, *NODE_ADMIN,
                        "--set", "staticPod.enabled=true"], capture_output=True, text=True,
                       timeout=120)
    if p.returncode == 0 or "static pod" not in p.stderr:
        fail("adminListen=$(HOST_IP) with the static pod was not refused: %r" % p.stderr)
    print("monitoring objects: each renders alone when on, none when off, unscrapable refused")


def promtool(*args):
    p = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120, cwd=TMP)
    return p.returncode, (p.stdout + p.stderr).strip()


def rules_check():
    """promtool check rules + test rules on the rendered PrometheusRule."""
    rule = [o for o in render(*NODE_ADMIN, "--set", "prometheusRule.enabled=true")
            if o["kind"] == "PrometheusRule"][0]
    groups = rule["spec"]["groups"]
    with open(os.path.join(TMP, "rules-full.yaml"), "w") as f:
        json.dump({"groups": groups}, f)
    rc, out = promtool("check", "rules", "rules-full.yaml")
    if rc != 0:
        fail("promtool check rules: " + out)
    bare = json.loads(json.dumps(groups))
    for g in bare:
        for r in g["rules"]:
            r.pop("annotations", None)
    with open(os.path.join(TMP, "rules.yaml"), "w") as f:
        json.dump({"groups": bare}, f)
    shutil.copy(os.path.join(HERE, "alerts_test.yaml"), TMP)
    rc, out = promtool("test", "rules", "alerts_test.yaml")
    if rc != 0:
        fail("promtool test rules:\n" + out)
    alerts = [r["alert"] for g in groups for r in g["rules"]]
    tested = set(re.findall(r"alertname: (\w+)", open(os.path.join(HERE, "alerts_test.yaml")).read()))
    if set(alerts) - tested:
        fail("alerts without a promtool test: %s" % sorted(set(alerts) - tested))
    runbooks = open(os.path.join(SRC, "docs", "alerts.md")).read()
    for a in alerts:
        if "## %s" % a not in runbooks:
            fail("alert %s has no runbook section in docs/alerts.md" % a)
    print("alerts: %d rules pass promtool check and test (%s)" % (len(alerts), out.splitlines()[-1]))
    return [r["expr"] for g in groups for r in g["rules"]]


def dashboard_exprs():
    d = json.load(open(DASHBOARD))
    exprs = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                exprs.append(t["expr"])
            walk(p.get("panels", []))
    walk(d["panels"])
    for v in d["templating"]["list"]:
        if v["type"] == "query":
            m = re.fullmatch(r"label_values\((\w+), *(\w+)\)", v["query"]["query"])
            if not m:
                fail("dashboard variable %s: not label_values(metric, label)" % v["name"])
            exprs.append(m.group(1))
    return exprs


def exported_metrics():
    """The metric families a running apilb with discovery and a state file exports."""
    kc = unreachable_kubeconfig(TMP)
    a = Apilb("--upstream", "127.0.0.2:1", "--kubeconfig", kc,
              "--state-file", os.path.join(TMP, "state"), admin=True)
    try:
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % a.admin_port,
                                      timeout=10).read().decode()
    finally:
        a.stop()
    names = set(re.findall(r"^# TYPE (\w+) ", text, re.M))
    hist = {n for n in names if re.search(r"^# TYPE %s histogram" % n, text, re.M)}
    for n in hist:
        names |= {n + "_bucket", n + "_sum", n + "_count"}
    return names


def main():
    check_on_off()
    rule_exprs = rules_check()
    dash = dashboard_exprs()
    grafana = {"$node": ".*", "${node}": ".*"}
    recs = []
    for i, e in enumerate(dash):
        for k, v in grafana.items():
            e = e.replace(k, v)
        recs.append({"record": "apilb:dashboard_%d" % i, "expr": e})
    with open(os.path.join(TMP, "dashboard-rules.yaml"), "w") as f:
        json.dump({"groups": [{"name": "dashboard", "rules": recs}]}, f)
    rc, out = promtool("check", "rules", "dashboard-rules.yaml")
    if rc != 0:
        fail("a dashboard expression does not parse: " + out)
    exported = exported_metrics()
    words = {"by", "on", "unless", "and", "or", "sum", "count", "max", "min", "rate",
             "increase", "changes", "time", "vector", "scalar", "histogram_quantile", "le",
             "state", "upstream", "instance", "node", "reason", "result", "kind"}
    for where, exprs in (("dashboard", dash), ("alert rules", rule_exprs)):
        for e in exprs:
            unquoted = re.sub(r'"[^"]*"', '""', e)
            for name in re.findall(r"\bapilb_\w+", unquoted):
                if name not in exported:
                    fail("%s: %r names %s, which apilb does not export" % (where, e, name))
            for name in set(re.findall(r"\b[a-z_]+\b", unquoted)) - words:
                if not name.startswith("apilb_") and not re.fullmatch(r"\d+\w*", name):
                    fail("%s: %r uses %r: not an apilb metric nor a known word" % (where, e, name))
    print("dashboard: %d expressions parse; they and the rules name only the %d metrics apilb "
          "exports" % (len(dash), len(exported)))
    print("PASS monitoring")


if __name__ == "__main__":
    main()
