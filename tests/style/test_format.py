# SPDX-License-Identifier: Apache-2.0
"""The C sources are formatted as the top-level .clang-format says:
`clang-format --dry-run --Werror` over every .c and .h file in proxy/,
watcher/, container/ and tests/. Fails naming each file and how many places
in it would change (then clang-format's own first lines); exits 77 (skipped)
when no clang-format is installed (Debian clang-format,
scripts/packages/style.txt). CLANG_FORMAT names another binary."""

import os
import re
import shutil
import subprocess
import sys

SRC = os.environ.get("APILB_SOURCE_DIR",
                     os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DIRS = ("proxy", "watcher", "container", "tests")
SHOWN = 40  # lines of clang-format's report printed at the most


def sources():
    out = []
    for d in DIRS:
        for root, dirs, files in os.walk(os.path.join(SRC, d)):
            dirs.sort()
            out += [os.path.relpath(os.path.join(root, f), SRC)
                    for f in sorted(files) if f.endswith((".c", ".h"))]
    return out


def main():
    exe = os.environ.get("CLANG_FORMAT")
    if exe and not shutil.which(exe):
        print("FAIL: CLANG_FORMAT=%s: no such program" % exe)
        return 1
    exe = exe or shutil.which("clang-format")
    if not exe:
        print("SKIP: no clang-format (Debian clang-format, scripts/packages/style.txt)")
        return 77
    if not os.path.isfile(os.path.join(SRC, ".clang-format")):
        print("FAIL: no .clang-format in %s" % SRC)
        return 1
    files = sources()
    if not files:
        print("FAIL: no C sources found below %s" % SRC)
        return 1
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.strip()
    p = subprocess.run([exe, "--dry-run", "--Werror", "--style=file"] + files, cwd=SRC,
                       capture_output=True, text=True, timeout=300)
    if p.returncode == 0:
        print("PASS: %d files formatted as .clang-format says (%s)" % (len(files), version))
        return 0
    places = {}
    for m in re.finditer(r"^(\S+?):\d+:\d+: error: code should be clang-formatted", p.stderr, re.M):
        places[m.group(1)] = places.get(m.group(1), 0) + 1
    if not places:  # an error of another kind: bad config, unreadable file
        print("FAIL: %s exited %d:\n%s" % (exe, p.returncode, p.stderr.strip()))
        return 1
    for f in sorted(places):
        print("%s: %d places to reformat" % (f, places[f]))
    print("\n".join(p.stderr.splitlines()[:SHOWN]))
    print("FAIL: %d places in %d of %d files differ from .clang-format (%s); "
          "clang-format -i FILE rewrites one" % (sum(places.values()), len(places), len(files),
                                                 version))
    return 1


if __name__ == "__main__":
    sys.exit(main())
