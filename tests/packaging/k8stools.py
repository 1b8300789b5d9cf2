# SPDX-License-Identifier: Apache-2.0
"""helm (v4) and the node modules that validate manifests: from HELM and
NODE_PATH (scripts/test.sh sets them), or installed by scripts/k8s-tools.sh
when a test runs alone (plain ctest)."""

import os
import subprocess


def find(src):
    """Returns (helm, node_path)."""
    if os.environ.get("HELM") and os.environ.get("NODE_PATH"):
        return os.environ["HELM"], os.environ["NODE_PATH"]
    tools = subprocess.run(["bash", os.path.join(src, "scripts", "k8s-tools.sh")],
                           capture_output=True, text=True, check=True,
                           timeout=900).stdout.strip().splitlines()[-1]
    return os.path.join(tools, "helm"), os.path.join(tools, "npm", "node_modules")
