# SPDX-License-Identifier: Apache-2.0
"""No function in proxy/*.c or watcher/*.c is longer than 80 lines (STYLE.md:
short functions; issue 22). A function's length is the number of lines
between its braces: from the line after the opening brace to the line before
the closing one, blank lines and comments included.

Finding the bodies takes a small C lexer, not a regex: comments, string and
character literals (with their escapes) and preprocessor lines (with their
backslash continuations) are blanked first, so a brace in any of them does not
count; of an #if/#elif/#else chain only the first branch is read (the others
would open the same block twice); a brace at file level opens a function body
only when what precedes it, since the last ';' or '}' at file level, ends in
')' and holds no '=' (so struct, union and enum definitions and initializers
are not functions). Run with --self-test to check the lexer on tricky input;
every run does that first."""

import os
import re
import sys

LIMIT = 80
# Words before a '(' in a function's head that are not its name: a return
# type before a '(*' declarator, an attribute.
NOT_NAMES = {"void", "char", "short", "int", "long", "float", "double", "signed", "unsigned",
             "const", "volatile", "static", "inline", "extern", "struct", "union", "enum",
             "__attribute__", "_Noreturn", "_Alignas", "__declspec"}
DIRS = ("proxy", "watcher")


def blank(text):
    """text with comments, literals and preprocessor lines replaced by spaces
    (newlines kept, so line numbers stay), and the lines of #elif/#else
    branches blanked too."""
    out = []
    i, n = 0, len(text)
    line_start = True
    skip = []  # per open #if: True while in a branch after the first
    while i < n:
        c = text[i]
        if line_start and c in " \t":
            out.append(c)
            i += 1
            continue
        if line_start and c == "#":
            j = i
            while True:  # the directive, with its continuations
                k = text.find("\n", j)
                k = n if k < 0 else k
                if k > 0 and text[k - 1] == "\\" and k < n:
                    j = k + 1
                    continue
                break
            directive = text[i:k]
            word = re.match(r"#\s*(\w*)", directive).group(1)
            if word in ("if", "ifdef", "ifndef"):
                skip.append(False)
            elif word in ("elif", "else") and skip:
                skip[-1] = True
            elif word == "endif" and skip:
                skip.pop()
            out.append(re.sub(r"[^\n]", " ", directive))
            i = k
            continue
        line_start = False
        if c == "\n":
            out.append(c)
            i += 1
            line_start = True
            continue
        if any(skip):
            out.append(" ")
            i += 1
            continue
        if text.startswith("/*", i):
            k = text.find("*/", i + 2)
            k = n if k < 0 else k + 2
            out.append(re.sub(r"[^\n]", " ", text[i:k]))
            i = k
            continue
        if text.startswith("//", i):
            k = text.find("\n", i)
            k = n if k < 0 else k
            out.append(" " * (k - i))
            i = k
            continue
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
            continue
        out.append(c)
        i += 1
    return "".join(out)


def function_name(head):
    """The name a function's head (its text before the body) declares: the
    last identifier before a '(' outside any parentheses (the return type may
    be a macro call, STACK_OF(X509) *f(...)), or one level in when the
    function returns a pointer to a function (void (*f(int))(void))."""
    by_depth = {}
    depth = 0
    for m in re.finditer(r"([A-Za-z_]\w*)\s*\(|[()]", head):
        if m.group(1):
            if m.group(1) not in NOT_NAMES:
                by_depth.setdefault(depth, []).append(m.group(1))
            depth += 1
        elif m.group(0) == "(":
            depth += 1
        else:
            depth -= 1
    for d in sorted(by_depth):
        return by_depth[d][-1]
    return None


def functions(text):
    """(name, line of the opening brace, body length in lines) for every
    function defined in the C source text, in order."""
    code = blank(text)
    found = []
    depth = 0
    head_from = 0  # where the text before the next file-level brace starts
    opened = None  # (name, line) of the function whose body is open
    for m in re.finditer(r"[{};]", code):
        ch, pos = m.group(0), m.start()
        if ch == "{":
            if depth == 0:
                head = code[head_from:pos].strip()
                name = None
                if head.endswith(")") and "=" not in head:
                    name = function_name(head)
                opened = (name, code.count("\n", 0, pos) + 1) if name else None
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                raise ValueError("line %d: '}' without '{'" % (code.count("\n", 0, pos) + 1))
            if depth == 0:
                if opened:
                    end = code.count("\n", 0, pos) + 1
                    found.append((opened[0], opened[1], max(0, end - opened[1] - 1)))
                    opened = None
                head_from = pos + 1
        elif depth == 0:
            head_from = pos + 1
    if depth != 0:
        raise ValueError("%d '{' never closed" % depth)
    return found


SELF_TEST = r'''
#include <stdio.h>
#define BRACE '{'
#define MULTI(x) do { \
    x; } while (0)
struct s { int a; };
enum e { A, B };
static const char *names[] = { "a{", "}b" };
static int table[2] = {
    1, 2,
};
/* a comment with { and } */
static int one(int x)
{
    char c = '}';
    const char *s = "\"{";
    // a } in a line comment
#if X
    if (x) {
#else
    if (!x) {
#endif
        x++;
    }
    return c + s[0];
}

int two(void) { return 0; }

static void (*three(int a))(void)
{
    return NULL;
}

STACK_OF(X509) *four(const char *p)
{
}
'''


def self_test():
    got = functions(SELF_TEST)
    want = [("one", 14, 11), ("two", 28, 0), ("three", 31, 1), ("four", 36, 0)]
    if got != want:
        raise AssertionError("the lexer found %r in its self-test, want %r" % (got, want))


def main():
    self_test()
    if sys.argv[1:] == ["--self-test"]:
        print("self-test passed")
        return 0
    src = os.environ.get("APILB_SOURCE_DIR",
                         os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    over = []
    for d in DIRS:
        for f in sorted(os.listdir(os.path.join(src, d))):
            if not f.endswith(".c"):
                continue
            path = os.path.join(d, f)
            with open(os.path.join(src, path), encoding="utf-8") as fh:
                try:
                    fns = functions(fh.read())
                except ValueError as e:
                    print("%s: cannot read its functions: %s" % (path, e))
                    return 1
            for name, line, length in fns:
                if length > LIMIT:
                    over.append((path, line, name, length))
    for path, line, name, length in over:
        print("%s:%d: %s() is %d lines long (limit %d)" % (path, line, name, length, LIMIT))
    if over:
        print("FAIL: %d functions over %d lines" % (len(over), LIMIT))
        return 1
    print("PASS: no function in %s over %d lines" % (", ".join(d + "/*.c" for d in DIRS), LIMIT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
