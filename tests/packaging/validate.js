// SPDX-License-Identifier: Apache-2.0
// Validates rendered Kubernetes manifests (multi-document YAML on stdin)
// against the API schemas of the kubernetes-models packages (Kubernetes and
// the Prometheus Operator's objects), offline. Prints
// one JSON line per apilb container found (in a Pod template, or in a static
// pod manifest carried by a ConfigMap): {"where": ..., "args": [...]}.
// Exits 1 naming the object and the schema error.
"use strict";
const yaml = require("js-yaml");
const fs = require("fs");

const models = {
  "v1/ServiceAccount": "kubernetes-models/v1/ServiceAccount",
  "v1/ConfigMap": "kubernetes-models/v1/ConfigMap",
  "v1/Pod": "kubernetes-models/v1/Pod",
  "apps/v1/DaemonSet": "kubernetes-models/apps/v1/DaemonSet",
  "rbac.authorization.k8s.io/v1/Role": "kubernetes-models/rbac.authorization.k8s.io/v1/Role",
  "rbac.authorization.k8s.io/v1/RoleBinding":
    "kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding",
  "rbac.authorization.k8s.io/v1/ClusterRole":
    "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole",
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding":
    "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding",
  "v1/Service": "kubernetes-models/v1/Service",
  "monitoring.coreos.com/v1/ServiceMonitor":
    "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor",
  "monitoring.coreos.com/v1/PodMonitor":
    "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor",
  "monitoring.coreos.com/v1/PrometheusRule":
    "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule",
};

function validate(obj, where) {
  const key = obj.apiVersion + "/" + obj.kind;
  const path = models[key];
  if (!path) throw new Error(where + ": no schema for " + key);
  const Model = Object.values(require(path))[0];
  try {
    new Model(obj).validate();
  } catch (e) {
    throw new Error(where + " (" + key + "): " + e.message);
  }
}

function apilbArgs(podSpec, where, out) {
  for (const c of podSpec.containers || []) {
    if (c.name === "apilb") out.push({ where: where, args: c.args || [] });
  }
}

const out = [];
let count = 0;
try {
  const docs = yaml.loadAll(fs.readFileSync(0, "utf8")).filter((d) => d);
  for (const doc of docs) {
    const where = doc.kind + "/" + (doc.metadata || {}).name;
    validate(doc, where);
    count++;
    if (doc.kind === "DaemonSet") apilbArgs(doc.spec.template.spec, where, out);
    if (doc.kind === "ConfigMap") {
      for (const [name, text] of Object.entries(doc.data || {})) {
        const pod = yaml.load(text);
        if (pod && pod.kind === "Pod") {
          validate(pod, where + "[" + name + "]");
          count++;
          apilbArgs(pod.spec, where + "[" + name + "]", out);
        }
      }
    }
  }
} catch (e) {
  console.error("INVALID: " + e.message);
  process.exit(1);
}
for (const o of out) console.log(JSON.stringify(o));
console.error("validated " + count + " objects");
