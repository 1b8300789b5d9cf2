# SPDX-License-Identifier: Apache-2.0
"""The README's options table cannot drift from the program: every flag that
`apilb --help` lists has a row, with the same metavariable and the same
default, and a meaning; every row names a flag the program has. And the
README stays a front door: under 12 KiB, every relative link resolving."""

import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("APILB_SOURCE_DIR", os.path.join(HERE, "..", ".."))
APILB = os.environ["APILB"]
README_MAX_BYTES = 12 * 1024


PROBLEMS = []


def fail(msg):
    print("FAIL " + msg)
    sys.exit(1)


def problem(msg):
    print("FAIL " + msg)
    PROBLEMS.append(msg)


def help_flags():
    """{flag: (metavar or None, default or None)} from apilb --help."""
    out = subprocess.run([APILB, "--help"], capture_output=True, text=True, timeout=30).stdout
    flags = {}
    for line in out.splitlines():
        m = re.match(r"  (--[a-z0-9-]+)(?: ([A-Z][A-Z:_=]*))? {2,}(.*)$", line)
        if not m:
            continue
        text = re.sub(r" \[APILB_[A-Z_]+\]$", "", m.group(3))
        d = re.search(r"\(default ([^()]*(?:\([^()]*\))?[^()]*)\)$", text)
        flags[m.group(1)] = (m.group(2), d.group(1).strip() if d else None)
    if len(flags) < 20:
        fail("apilb --help listed only %d flags: %r" % (len(flags), out[:500]))
    return flags


def readme_rows():
    """[(flag, metavar, default, meaning)] from the README's options table."""
    text = open(os.path.join(SRC, "README.md")).read()
    start = text.index("### Options")
    rows = []
    for line in text[start:].splitlines()[1:]:
        if line.startswith("#"):
            break
        if not line.startswith("| `--"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3:
            fail("README options row without three columns: %r" % line)
        names = re.findall(r"`(--[a-z0-9-]+)(?: ([A-Z][A-Z:_=]*))?`", cells[0])
        defaults = [d.strip() for d in re.split(r",\s*(?=`)", cells[1])] if cells[1] else []
        for i, (flag, metavar) in enumerate(names):
            d = defaults[i] if i < len(defaults) else (defaults[0] if len(defaults) == 1 else "")
            rows.append((flag, metavar or None, d, cells[2]))
    return rows


def same_default(readme, program):
    """The README's default cell (`x` with optional words) against the program's."""
    if program is None:
        return readme in ("",) or not re.match(r"^`", readme)
    codes = re.findall(r"`([^`]*)`", readme)
    if codes:
        return codes[0] == program
    return readme.replace(" ", "") == program.replace(" ", "").replace("default:", "")


def main():
    flags = help_flags()
    rows = readme_rows()
    seen = {}
    for flag, metavar, default, meaning in rows:
        if flag not in flags:
            problem("README lists %s, which apilb --help does not" % flag)
            continue
        want_meta, want_default = flags[flag]
        # The README writes BOOL where --help shows a switch without a value.
        if metavar != want_meta and not (metavar == "BOOL" and want_meta is None):
            problem("README writes %s %s; apilb --help: %s %s" % (flag, metavar or "", flag,
                                                               want_meta or ""))
        if not same_default(default, want_default):
            problem("README gives %s the default %r; apilb --help says %r" % (flag, default,
                                                                           want_default))
        if not meaning and flag not in ("--version", "--help"):
            problem("README row of %s says nothing about what it does" % flag)
        if "not yet" in meaning:
            problem("README row of %s says 'not yet': %r" % (flag, meaning))
        seen[flag] = True
    missing = sorted(set(flags) - set(seen))
    if missing:
        problem("apilb --help has flags the README's options table lacks: %s" % ", ".join(missing))
    readme = os.path.join(SRC, "README.md")
    size = os.path.getsize(readme)
    if size > README_MAX_BYTES:
        problem("README.md is %d bytes: the front door stays under %d (move detail to docs/)"
                % (size, README_MAX_BYTES))
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", open(readme).read()):
        if not os.path.exists(os.path.join(SRC, target)):
            problem("README links %s, which does not exist" % target)
    if PROBLEMS:
        sys.exit(1)
    print("PASS README options: %d flags, each with its metavariable, default and meaning; "
          "%d bytes, links resolve" % (len(flags), size))


if __name__ == "__main__":
    main()
