# SPDX-License-Identifier: Apache-2.0
"""The layers hold (STYLE.md section 1): the proxy core and the executable
never use libcurl, jansson, libyaml or libmicrohttpd (they live in the
modules apilb-discovery.so and apilb-admin.so, loaded only when asked for);
the watcher includes from proxy/ only the support headers. Checked on the
sources (includes) and on the built objects (undefined symbols, linked
libraries), so neither a stray #include nor a stray call slips through."""

import os
import re
import subprocess
import sys

SRC = os.environ["APILB_SOURCE_DIR"]
APILB = os.environ["APILB"]
CORE = os.environ["APILB_CORE_LIB"]
FOREIGN_HEADERS = re.compile(r'#\s*include\s*[<"](curl/|jansson\.h|yaml\.h|microhttpd\.h)')
FOREIGN_SYMBOLS = re.compile(r"^(curl_|json_|jansson_|yaml_|MHD_)")
FOREIGN_LIBS = ("libcurl", "libjansson", "libyaml", "libmicrohttpd")
# What the watcher may take from proxy/: the support layer.
WATCHER_MAY_INCLUDE = {"addr.h", "log.h", "fileread.h", "filewatch.h", "strbuf.h", "zone.h",
                       "watchstats.h", "clock.h", "rand.h"}
MODULE_SOURCES = {"admin.c"}  # built as apilb-admin.so, which links libmicrohttpd

problems = []


def sources(d):
    return sorted(f for f in os.listdir(os.path.join(SRC, d)) if f.endswith((".c", ".h")))


for f in sources("proxy"):
    if f in MODULE_SOURCES:
        continue
    for n, line in enumerate(open(os.path.join(SRC, "proxy", f)), 1):
        if FOREIGN_HEADERS.search(line):
            problems.append("proxy/%s:%d includes %s" % (f, n, line.strip()))
proxy_headers = set(sources("proxy"))
watcher_headers = set(sources("watcher"))
for f in sources("watcher"):
    for n, line in enumerate(open(os.path.join(SRC, "watcher", f)), 1):
        m = re.match(r'\s*#\s*include\s*"([^"]+)"', line)
        if m and m.group(1) not in watcher_headers and m.group(1) in proxy_headers and \
                m.group(1) not in WATCHER_MAY_INCLUDE:
            problems.append("watcher/%s:%d includes proxy/%s, which is not a support header (%s)"
                            % (f, n, m.group(1), ", ".join(sorted(WATCHER_MAY_INCLUDE))))
for what, path in (("libproxy_core.a", CORE), ("apilb", APILB)):
    nm = subprocess.run(["nm", "-u", path], capture_output=True, text=True, check=True).stdout
    bad = sorted({l.split()[-1] for l in nm.splitlines()
                  if l.strip() and FOREIGN_SYMBOLS.match(l.split()[-1])})
    if bad:
        problems.append("%s references %s" % (what, ", ".join(bad[:10])))
ldd = subprocess.run(["ldd", APILB], capture_output=True, text=True, check=True).stdout
for lib in FOREIGN_LIBS:
    if lib in ldd:
        problems.append("apilb links %s: %s" % (lib, [l.strip() for l in ldd.splitlines()
                                                      if lib in l][0]))
for p in problems:
    print("FAIL " + p)
if problems:
    sys.exit(1)
print("PASS layering: proxy core and apilb free of curl, jansson, yaml and microhttpd; "
      "watcher includes only support headers from proxy/")
