#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Base images cannot be pulled here: builds a local stand-in for debian:12
# with debootstrap (minbase, from the machine's own apt mirror) and imports it
# into podman under that name. Cached: does nothing when the image exists.
set -euo pipefail
export CONTAINERS_CONF=${CONTAINERS_CONF:-$(cd "$(dirname "$0")" && pwd)/containers.conf}
if podman image exists debian:12; then
    exit 0
fi
mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
    2>/dev/null | sed -e 's/#.*//' | grep -oE 'https?://[^ ]+/debian/?' | head -1 || true)
[ -n "$mirror" ] || { echo "container-bases.sh: no Debian mirror in /etc/apt sources" >&2; exit 1; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase bookworm "$root" "$mirror" >&2
# The stand-in must find the same mirror from inside a build.
echo "deb $mirror bookworm main" >"$root/etc/apt/sources.list"
tar -C "$root" -c . | podman import - debian:12 >&2
echo "container-bases.sh: debian:12 stand-in imported" >&2
