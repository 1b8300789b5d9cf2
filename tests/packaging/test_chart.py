# SPDX-License-Identifier: Apache-2.0
"""The Helm chart: helm (v4) lint and template with the defaults and with
every documented option; each rendering validated offline against the
Kubernetes API schemas (kubernetes-models); the apilb arguments of the
DaemonSet and of the static pod accepted by `apilb --check-config`; the
security context and RBAC the design asks for."""

import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CHART = os.path.join(HERE, "..", "..", "helm", "apilb")
HELM = os.environ.get("HELM", "helm")
APILB = os.environ["APILB"]
NODE_PATH = os.environ.get("NODE_PATH", "")

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
                   "--set", "closeUnhealthy=false", "--set", "drainTimeout=10m",
                   "--set", "shutdownTimeout=1m", "--set", "maxConnectionAge=1h",
                   "--set", "balance=round-robin", "--set", "workers=2",
                   "--set", "maxConnections=5000", "--set", "logLevel=debug",
                   "--set", "logFormat=text", "--set", "excludeControlPlane=true",
                   "--set", "image.repository=registry.example/apilb", "--set", "image.tag=9.9.9",
                   "--set", "runAsUser=1234", "--set", "serviceAccount.name=custom"],
    "admin-off-no-state": ["--set", "adminListen=off", "--set", "stateFile.enabled=false",
                           "--set", "upstreams={10.0.0.11:6443}"],
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
}


def fail(msg):
    print("FAIL " + msg)
    sys.exit(1)


def helm(*args):
    return subprocess.run([HELM, *args], capture_output=True, text=True, timeout=120)


def main():
    p = helm("lint", "--strict", CHART)
    if p.returncode != 0:
        fail("helm lint: " + p.stdout + p.stderr)
    sa = tempfile.mkdtemp(prefix="apilb-sa-")
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
            r = subprocess.run([APILB, *c["args"], "--check-config"], capture_output=True,
                               text=True, timeout=30,
                               env={"PATH": "/usr/bin:/bin"})
            if r.returncode != 0:
                fail("%s %s: apilb --check-config rejected %r: %s"
                     % (name, c["where"], c["args"], r.stderr.strip()))
            checked += 1
        text = p.stdout
        for want in ("hostNetwork: true", "dnsPolicy: ClusterFirstWithHostNet",
                     "readOnlyRootFilesystem: true", "allowPrivilegeEscalation: false",
                     'drop: ["ALL"]', "type: RuntimeDefault", "maxSurge: 1",
                     "maxUnavailable: 0"):
            if want not in text:
                fail("%s: rendering lacks %r" % (name, want))
        if "kind: ClusterRole" in text:
            fail("%s: RBAC must be a namespaced Role" % name)
        if "staticPod.enabled=true" in " ".join(args) and "/etc/kubernetes/" not in text:
            fail("%s: no static pod manifest path" % name)
        print("%s: %s" % (name, v.stderr.strip()))
    for name, args in BAD.items():
        p = helm("template", "apilb", CHART, *args)
        if p.returncode == 0:
            fail("values.schema.json accepted %s" % name)
    print("PASS chart: %d variants, %d apilb argument lists accepted by --check-config, "
          "%d bad values rejected" % (len(VARIANTS), checked, len(BAD)))


if __name__ == "__main__":
    main()
