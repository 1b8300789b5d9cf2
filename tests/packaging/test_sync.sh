#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# apilb-sync, the chart's static-pod installer and state-directory init:
# copies appear atomically with the right mode and owner, change when the
# source changes (and only then), a missing source is an error that is
# retried, --dir hands a root-owned directory to the apilb user and refuses
# a symlink, a link planted beside a destination is never followed,
# SIGTERM ends it with status 0, and bad arguments exit 1.
set -euo pipefail
sync=${APILB_SYNC:?path to apilb-sync}
work=$(mktemp -d)
chmod 0755 "$work"  # the apilb user must reach the state dir below
pid=
cleanup() {
    [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
mode_owner() { stat -c '%a %u:%g' "$1"; }

mkdir -p "$work/src" "$work/etc/kubernetes/manifests" "$work/creds"
printf 'apiVersion: v1\nkind: Pod\n' >"$work/src/apilb.yaml"
printf 'token-1\n' >"$work/src/token"

# One pass: both copies written, manifest 0644, the token 0640, owned by --owner.
"$sync" --once --owner=4321 \
    "$work/src/apilb.yaml=$work/etc/kubernetes/manifests/apilb.yaml" \
    "$work/src/token=$work/creds/token" >"$work/out"
cmp -s "$work/src/apilb.yaml" "$work/etc/kubernetes/manifests/apilb.yaml" || fail "manifest not copied"
cmp -s "$work/src/token" "$work/creds/token" || fail "token not copied"
[ "$(mode_owner "$work/etc/kubernetes/manifests/apilb.yaml")" = "644 4321:4321" ] ||
    fail "manifest mode/owner: $(mode_owner "$work/etc/kubernetes/manifests/apilb.yaml")"
[ "$(mode_owner "$work/creds/token")" = "640 4321:4321" ] ||
    fail "token mode/owner: $(mode_owner "$work/creds/token")"
[ "$(grep -c updated "$work/out")" = 2 ] || fail "expected 2 updates: $(cat "$work/out")"
ls "$work/creds" | grep -q tmp && fail "temporary file left behind"

# Nothing changed: no rewrite (the inode stays).
ino=$(stat -c %i "$work/creds/token")
"$sync" --once "$work/src/token=$work/creds/token" >"$work/out"
[ -s "$work/out" ] && fail "rewrote an unchanged file: $(cat "$work/out")"
[ "$(stat -c %i "$work/creds/token")" = "$ino" ] || fail "unchanged file replaced"

# A missing source: exit 1 with --once, and the destination is kept.
if "$sync" --once "$work/src/nope=$work/creds/token" 2>"$work/err"; then
    fail "missing source accepted"
fi
grep -q 'nope' "$work/err" || fail "no message naming the missing source"
cmp -s "$work/src/token" "$work/creds/token" || fail "destination damaged by a failed sync"

# Running: a rotated source is picked up within the interval (atomic rename:
# the destination's inode changes), and SIGTERM exits 0.
"$sync" --interval=1s "$work/src/token=$work/creds/token" >"$work/out" 2>&1 &
pid=$!
printf 'token-2\n' >"$work/src/token.new"
mv "$work/src/token.new" "$work/src/token"
for _ in $(seq 50); do
    cmp -s "$work/src/token" "$work/creds/token" && break
    sleep 0.1
done
cmp -s "$work/src/token" "$work/creds/token" || fail "rotated token not copied within 5 s"
[ "$(stat -c %i "$work/creds/token")" != "$ino" ] || fail "rotation did not replace the file"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ "$rc" = 0 ] || fail "SIGTERM: exit $rc"

# --dir: created, or taken over from root, as 0700 owned by --owner.
mkdir -m 0755 "$work/state-existing"
"$sync" --once --owner=70443 --dir="$work/state-new" --dir="$work/state-existing"
[ "$(mode_owner "$work/state-new")" = "700 70443:70443" ] ||
    fail "new state dir: $(mode_owner "$work/state-new")"
[ "$(mode_owner "$work/state-existing")" = "700 70443:70443" ] ||
    fail "existing state dir: $(mode_owner "$work/state-existing")"
# The apilb user can now create files there (what the state file needs).
if command -v setpriv >/dev/null && [ "$(id -u)" = 0 ]; then
    setpriv --reuid=70443 --regid=70443 --clear-groups touch "$work/state-existing/state.tmp" ||
        fail "uid 70443 cannot write in the state dir"
fi
# A symlink planted at the path is refused, and its target is not touched.
mkdir -m 0755 "$work/target"
ln -s "$work/target" "$work/state-link"
if "$sync" --once --owner=70443 --dir="$work/state-link" 2>"$work/err"; then
    fail "--dir followed a symlink"
fi
[ "$(mode_owner "$work/target")" = "755 $(id -u):$(id -g)" ] || fail "symlink target was changed"

# A link planted where the temporary file used to go (DST.apilb-sync.tmp)
# is not followed: its target keeps its bytes and its owner, and DST is
# still replaced (a compromised apilb owning the directory could otherwise
# make the root helper truncate and chown any file, e.g. a manifest).
printf 'victim\n' >"$work/victim"
victim_was=$(mode_owner "$work/victim")
ln -s "$work/victim" "$work/creds/token.apilb-sync.tmp"
printf 'token-3\n' >"$work/src/token"
"$sync" --once --owner=4321 "$work/src/token=$work/creds/token" >"$work/out" ||
    fail "sync failed with a link planted beside the destination"
[ "$(cat "$work/victim")" = victim ] || fail "the planted link was followed: victim now $(cat "$work/victim")"
[ "$(mode_owner "$work/victim")" = "$victim_was" ] ||
    fail "the link's target was chowned: $(mode_owner "$work/victim")"
cmp -s "$work/src/token" "$work/creds/token" || fail "token not copied beside a planted link"
[ -L "$work/creds/token" ] && fail "the destination was replaced by the planted link"
[ "$(mode_owner "$work/creds/token")" = "640 4321:4321" ] ||
    fail "token mode/owner beside a planted link: $(mode_owner "$work/creds/token")"
rm "$work/creds/token.apilb-sync.tmp"
ls "$work/creds" | grep -q tmp && fail "temporary file left behind: $(ls "$work/creds")"
# Two syncs at once into one directory never share a temporary file: each
# copy that lands is whole.
for i in $(seq 40); do printf 'token-a-%04d\n' "$i" >>"$work/src/ta"; done
for i in $(seq 40); do printf 'token-b-%04d\n' "$i" >>"$work/src/tb"; done
for r in $(seq 30); do
    "$sync" --once "$work/src/ta=$work/creds/shared" >/dev/null 2>>"$work/err2" &
    "$sync" --once "$work/src/tb=$work/creds/shared" >/dev/null 2>>"$work/err2" &
    wait
    cmp -s "$work/creds/shared" "$work/src/ta" || cmp -s "$work/creds/shared" "$work/src/tb" ||
        fail "round $r: two syncs at once tore the copy"
    rm "$work/creds/shared"
done
[ -s "$work/err2" ] && fail "syncs at once failed: $(head -3 "$work/err2")"

# Bad arguments: exit 1 with a usage line.
for bad in "--owner=abc --dir=/tmp/x" "--interval=fast a=b" "--dir=relative" "" "--frob"; do
    # shellcheck disable=SC2086
    if "$sync" --once $bad >/dev/null 2>&1; then
        fail "accepted bad arguments: '$bad'"
    fi
done
echo "PASS apilb-sync: atomic copies, modes and owner, rotation, missing source, --dir, SIGTERM, planted link, two at once, bad args"
