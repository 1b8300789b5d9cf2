# SPDX-License-Identifier: Apache-2.0
"""The Helm chart: helm (v4) lint and template with the defaults and with
every documented option; each rendering validated offline against the
Kubernetes API schemas (kubernetes-models); the apilb arguments of the
DaemonSet and of the static pod accepted by `apilb --check-config`; the
security context and RBAC the design asks for."""

import atexit
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import k8stools

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("APILB_SOURCE_DIR", os.path.join(HERE, "..", ".."))
CHART = os.path.join(SRC, "helm", "apilb")
APILB = os.environ["APILB"]
HELM, NODE_PATH = k8stools.find(SRC)
# A real CA file for --health-ca through extraArgs (apilb --check-config loads it).
_CA_DIR = tempfile.mkdtemp(prefix="apilb-ca-")
HEALTH_CA = os.path.join(_CA_DIR, "ca.crt")
atexit.register(shutil.rmtree, _CA_DIR, True)
subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                "-subj", "/CN=apilb-test-ca", "-keyout", os.path.join(_CA_DIR, "ca.key"),
                "-out", HEALTH_CA], capture_output=True, check=True, timeout=60)
with open(os.path.join(_CA_DIR, "token"), "w") as _f:
    _f.write("t\n")

# Every value the chart documents, set to something other than its default.
VARIANTS = {
    "defaults": [],
    "static-pod": ["--set", "staticPod.enabled=true"],
    "seeds-no-discovery": ["--set", "discovery=off", "--set",
                           "upstreams={10.0.0.11:6443,[fd00::12]:6443}"],
    "everything": ["--set-json", 'listen=["127.0.0.1:8443","[::1]:8443"]',
                   "--set", "upstreams={10.0.0.11:6443}", "--set", "discovery=endpoints",
                   "--set", "discoveryDebounce=2s", "--set", "watchTimeout=7m",
                   "--set", "watchStall=2m", "--set", "stateFile.hostPath=/var/lib/apilb2",
                   "--set", "adminListen=127.0.0.1:19444", "--set", "connectTimeout=500ms",
                   "--set", "healthCheck=tcp", "--set", "healthInterval=10s",
                   "--set", "healthTimeout=3s", "--set", "rise=3", "--set", "fall=4",
                   "--set", "closeUnhealthy=false", "--set", "accessLog=true",
                   "--set", "drainTimeout=10m",
                   "--set", "shutdownTimeout=1m", "--set", "maxConnectionAge=1h",
                   "--set", "balance=round-robin", "--set", "workers=2",
                   "--set", "maxConnections=5000", "--set", "logLevel=debug",
                   "--set", "logFormat=text", "--set", "excludeControlPlane=true",
                   "--set", "image.repository=registry.example/apilb", "--set", "image.tag=9.9.9",
                   "--set", "runAsUser=1234", "--set", "serviceAccount.name=custom"],
    # The DaemonSet's service account is not mounted here: a token in a
    # directory of its own stands in for it (--check-config reads it).
    "health-auth": ["--set", "healthAuth=kubeconfig",
                    "--set-json", 'extraArgs=["--service-account-dir=%s"]' % _CA_DIR],
    # --prefer zone: the zone given, or the DaemonSet's from its pod label.
    "zone-given": ["--set", "prefer=zone", "--set", "zone=eu-1a"],
    "zone-from-label-off": ["--set", "prefer=none", "--set", "zoneFromNodeLabel=false"],
    # --prefer zone, no zone value: also the node object's label (NODE_NAME, get nodes).
    "zone-from-node": ["--set", "prefer=zone"],
    "admin-off-no-state": ["--set", "adminListen=off", "--set", "stateFile.enabled=false",
                           "--set", "upstreams={10.0.0.11:6443}"],
    # The values that are not apilb flags (and extraArgs) changed too.
    "pod-settings": ["--set", "image.pullPolicy=Always",
                     "--set-json", 'extraArgs=["--health-ca=%s"]' % HEALTH_CA,
                     "--set-json", 'tolerations=[{"key":"dedicated","operator":"Equal",'
                                   '"value":"lb","effect":"NoSchedule"}]',
                     "--set", "priorityClassName=system-cluster-critical",
                     "--set-json", 'resources={"requests":{"cpu":"20m","memory":"24Mi"},'
                                   '"limits":{"memory":"64Mi"}}',
                     "--set", "updateStrategy.maxSurge=2", "--set", "updateStrategy.maxUnavailable=1",
                     "--set", "terminationGracePeriodSeconds=90",
                     "--set", "serviceAccount.create=false", "--set", "serviceAccount.name=existing",
                     "--set", "rbac.create=false"],
    # The monitoring objects (test_monitoring.py checks them in depth).
    "monitoring": ["--set", "adminListen=$(HOST_IP):9444",
                   "--set", "metrics.serviceMonitor.enabled=true",
                   "--set", "metrics.serviceMonitor.interval=15s",
                   "--set", "metrics.serviceMonitor.labels.release=kps",
                   "--set", "metrics.podMonitor.enabled=true",
                   "--set", "metrics.podMonitor.interval=20s",
                   "--set", "metrics.podMonitor.labels.release=kps",
                   "--set", "metrics.scrapeTimeout=5s",
                   "--set", "prometheusRule.enabled=true",
                   "--set", "prometheusRule.labels.release=kps",
                   "--set-json", "prometheusRule.apiserverDownFraction=0.6",
                   "--set", "prometheusRule.discoveryStaleSeconds=1200",
                   "--set-json", "prometheusRule.connectFailuresPerSecond=0.1",
                   "--set", "prometheusRule.flapChanges=6",
                   "--set", "prometheusRule.runbookBaseURL=https://runbooks.example/apilb",
                   "--set", "grafanaDashboard.enabled=true",
                   "--set", "grafanaDashboard.namespace=monitoring",
                   "--set-string", "grafanaDashboard.labels.grafana_dashboard=1"],
    "static-pod-custom": ["--set", "staticPod.enabled=true", "--set",
                          "staticPod.manifestDir=/etc/kubernetes/static", "--set",
                          "staticPod.fileName=lb.yaml", "--set", "staticPod.syncInterval=30s"],
}

BAD = {
    "bad balance": ["--set", "balance=fastest"],
    "bad duration": ["--set", "connectTimeout=5"],
    "bad listen": ["--set-json", 'listen=["localhost"]'],
    "bad health": ["--set", "healthCheck=ping"],
    "bad rise": ["--set", "rise=0"],
    "unknown value": ["--set", "frobnicate=1"],
    "bad prefer": ["--set", "prefer=fastest"],
    "bad zone": ["--set", "zone=-eu"],
}


def fail(msg):
    print("FAIL " + msg)
    sys.exit(1)


def helm(*args):
    return subprocess.run([HELM, *args], capture_output=True, text=True, timeout=120)


def leaf_values():
    """Dotted names of the chart's values; lists and free-form maps count as one."""
    p = subprocess.run(["node", "-e",
                        "const y=require('js-yaml');const fs=require('fs');"
                        "console.log(JSON.stringify(y.load(fs.readFileSync(0,'utf8'))))"],
                       input=open(os.path.join(CHART, "values.yaml")).read(),
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, NODE_PATH=NODE_PATH), check=True)
    out = []

    def walk(prefix, v):
        if isinstance(v, dict) and prefix not in ("resources",) and \
                not prefix.endswith(".labels"):
            for k, x in v.items():
                walk(prefix + "." + k if prefix else k, x)
        else:
            out.append(prefix)
    walk("", json.loads(p.stdout))
    return out


def check_zone(name, joined, text, containers):
    """--zone from the value, else (DaemonSet only) from the pod's
    topology.kubernetes.io/zone label through the downward API."""
    label = "fieldPath: metadata.labels['topology.kubernetes.io/zone']"
    prefer = re.search(r"prefer=(\w+)", joined)
    for c in containers:
        want = "--prefer=" + (prefer.group(1) if prefer else "nearest")
        if want not in c["args"]:
            fail("%s %s: args lack %s: %r" % (name, c["where"], want, c["args"]))
        if "zone=eu-1a" in joined and "--zone=eu-1a" not in c["args"]:
            fail("%s %s: args lack --zone=eu-1a" % (name, c["where"]))
    from_label = "zone=" not in joined.replace("prefer=zone", "") and \
        "zoneFromNodeLabel=false" not in joined and "staticPod.enabled=true" not in joined
    if from_label != (label in text and "name: APILB_ZONE" in text):
        fail("%s: APILB_ZONE from the node's label should be %s" % (
            name, "rendered" if from_label else "absent"))
    if "staticPod.enabled=true" in joined and "APILB_ZONE" in text:
        fail("%s: the static pod cannot read pod labels through the downward API" % name)


def check_node_rbac(name, joined, text):
    """RBAC is a namespaced Role, plus `get nodes` (a ClusterRole, nothing
    else in it) and NODE_NAME from spec.nodeName only for a DaemonSet with
    prefer=zone and no zone value."""
    node = "prefer=zone" in joined and "zone=" not in joined.replace("prefer=zone", "") and \
        "staticPod.enabled=true" not in joined
    env = "name: NODE_NAME" in text and "fieldPath: spec.nodeName" in text
    if node != env:
        fail("%s: NODE_NAME from spec.nodeName should be %s" % (
            name, "rendered" if node else "absent"))
    roles = [d for d in text.split("\n---") if re.search(r"^kind: ClusterRole$", d, re.M)]
    want = node and "rbac.create=false" not in joined
    if want != bool(roles) or want != ("kind: ClusterRoleBinding" in text):
        fail("%s: a ClusterRole(Binding) for get nodes should be %s" % (
            name, "rendered" if want else "absent"))
    for d in roles:
        rules = d[d.index("rules:"):]
        if rules.split() != ["rules:", "-", "apiGroups:", '[""]', "resources:", '["nodes"]',
                             "verbs:", '["get"]']:
            fail("%s: the ClusterRole grants more than get nodes: %r" % (name, rules))


def check_documented_and_covered():
    """Every value is in the chart README and changed by some variant."""
    readme = open(os.path.join(CHART, "README.md")).read()
    schema = json.load(open(os.path.join(CHART, "values.schema.json")))
    # main() sets staticPod.credentialsDir for every rendering.
    setargs = " ".join(" ".join(a) for a in VARIANTS.values()) + " staticPod.credentialsDir=x"
    for key in leaf_values():
        last = key.rsplit(".", 1)[-1]
        if "`%s`" % key not in readme and "`.%s`" % last not in readme:
            fail("value %s is not documented in helm/apilb/README.md" % key)
        if not any(tok.startswith(key + "=") or tok.startswith(key + ".")
                   for tok in setargs.replace("'", " ").split()):
            fail("value %s is not exercised by any variant of this test" % key)
        node = schema
        for part in key.split("."):
            node = node.get("properties", {}).get(part)
            if node is None:
                fail("value %s is missing from values.schema.json" % key)
    print("every value (%d) documented, in the schema and exercised" % len(leaf_values()))


def check_notes():
    """NOTES.txt renders and tells the user where to point kubelet."""
    p = helm("install", "apilb", CHART, "--dry-run=client", "--namespace", "kube-system",
             "--set-json", 'listen=["127.0.0.1:8443"]')
    if p.returncode != 0:
        fail("helm install --dry-run: " + p.stderr)
    notes = p.stdout.split("NOTES:", 1)[-1]
    for want in ("server: https://127.0.0.1:8443", "tls-server-name: kubernetes",
                 "staticPod.enabled=true"):
        if want not in notes:
            fail("NOTES.txt lacks %r" % want)


def main():
    p = helm("lint", "--strict", CHART)
    if p.returncode != 0:
        fail("helm lint: " + p.stdout + p.stderr)
    sa = tempfile.mkdtemp(prefix="apilb-sa-")
    atexit.register(shutil.rmtree, sa, True)
    with open(os.path.join(sa, "token"), "w") as f:
        f.write("t\n")
    checked = 0
    for name, args in VARIANTS.items():
        # The static pod reads the service account the DaemonSet copies; point
        # it at a directory that exists here for --check-config.
        extra = ["--set", "staticPod.credentialsDir=" + sa]
        p = helm("template", "apilb", CHART, "--namespace", "kube-system", *args, *extra)
        if p.returncode != 0:
            fail("helm template %s: %s" % (name, p.stderr))
        v = subprocess.run(["node", os.path.join(HERE, "validate.js")], input=p.stdout,
                           capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, NODE_PATH=NODE_PATH))
        if v.returncode != 0:
            fail("%s: schema validation: %s" % (name, v.stderr))
        containers = [json.loads(l) for l in v.stdout.splitlines() if l.strip()]
        if not containers:
            fail("%s: no apilb container rendered" % name)
        for c in containers:
            # kubelet expands $(HOST_IP) from the container's env (the downward
            # API's status.hostIP; test_monitoring.py checks that it is there).
            argv = [a.replace("$(HOST_IP)", "127.0.0.1") for a in c["args"]]
            r = subprocess.run([APILB, *argv, "--check-config"], capture_output=True,
                               text=True, timeout=30,
                               env={"PATH": "/usr/bin:/bin"})
            if r.returncode != 0:
                fail("%s %s: apilb --check-config rejected %r: %s"
                     % (name, c["where"], c["args"], r.stderr.strip()))
            checked += 1
        text = p.stdout
        wants = ["hostNetwork: true", "dnsPolicy: ClusterFirstWithHostNet",
                 "readOnlyRootFilesystem: true", "allowPrivilegeEscalation: false",
                 'drop: ["ALL"]', "type: RuntimeDefault", "runAsNonRoot: true",
                 'add: ["NET_BIND_SERVICE"]']
        joined = " ".join(args)
        if "adminListen=off" not in joined:
            # it_admin_admin_slowloris asks the admin endpoint within this budget.
            wants += ["timeoutSeconds: 1"]
        if "updateStrategy" not in joined:
            wants += ["maxSurge: 1", "maxUnavailable: 0"]
        if "stateFile.enabled=false" not in joined:
            # The init container that hands the state hostPath to the apilb user.
            wants += ["name: state-dir", "--dir=/var/lib/apilb"
                      if "stateFile.hostPath" not in joined else "--dir=/var/lib/apilb2"]
        elif "name: state-dir" in text:
            fail("%s: state-dir init container without a state file" % name)
        if "rbac.create=false" in joined:
            if "kind: Role" in text:
                fail("%s: rbac.create=false still renders RBAC" % name)
        else:
            wants += ["kind: Role", "kind: RoleBinding", "namespace: default",
                      'verbs: ["get", "list", "watch"]']
        if "serviceAccount.create=false" in joined and "kind: ServiceAccount" in text:
            fail("%s: serviceAccount.create=false still renders a ServiceAccount" % name)
        for want in wants:
            if want not in text:
                fail("%s: rendering lacks %r" % (name, want))
        # apilb's own uid and gid everywhere it runs (DaemonSet, static pod)
        # and where its state directory is handed to it: one a process of
        # another image cannot have by chance (SO_REUSEPORT, docs/security.md).
        uid = "1234" if "runAsUser=1234" in joined else "70443"
        ids = re.findall(r"(?:runAsUser|runAsGroup): (\d+)|--owner=(\d+)", text)
        ids = [a or b for a, b in ids if (a or b) != "0"]  # 0: the root init helpers
        if not ids or set(ids) != {uid} or "65532" in text:
            fail("%s: apilb's uid/gid should be %s everywhere, found %r" % (name, uid, ids))
        check_node_rbac(name, joined, text)
        if "staticPod.enabled=true" in " ".join(args) and "/etc/kubernetes/" not in text:
            fail("%s: no static pod manifest path" % name)
        check_zone(name, joined, text, containers)
        print("%s: %s" % (name, v.stderr.strip()))
    check_documented_and_covered()
    check_notes()
    for name, args in BAD.items():
        p = helm("template", "apilb", CHART, *args)
        if p.returncode == 0:
            fail("values.schema.json accepted %s" % name)
    print("PASS chart: %d variants, %d apilb argument lists accepted by --check-config, "
          "%d bad values rejected" % (len(VARIANTS), checked, len(BAD)))


if __name__ == "__main__":
    main()
