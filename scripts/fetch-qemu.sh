#!/bin/bash
# Fetch QEMU 10.0.x from Debian's trixie source package (isolated apt
# configuration, download only) and print the path of the unpacked tree,
# Debian's own patches applied (dpkg-source -x).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

ISO_SUITE=$QEMU_SUITE
tree_for() { echo "$CACHE/qemu-src/${1//[~+:]/_}"; }

if [ -z "${REFRESH:-}" ] && [ -f "$CACHE/qemu-src/current" ]; then
	ver=$(cat "$CACHE/qemu-src/current")
	if [ -f "$(tree_for "$ver")/.unpacked" ]; then
		tree_for "$ver"; exit 0
	fi
fi

log "apt update ($ISO_SUITE sources, isolated)"
isolated_apt apt-get "$ISO_SUITE" update >/dev/null
# awk reads to the end: an early exit would kill apt-cache with SIGPIPE, and
# under pipefail this assignment would end the script without a word.
ver=$(isolated_apt apt-cache "$ISO_SUITE" showsrc qemu 2>/dev/null |
	awk '/^Version:/ && !v { v = $2 } END { print v }')
[ -n "$ver" ] || die "qemu source not found in $ISO_SUITE"
dest=$(tree_for "$ver")
if [ ! -f "$dest/.unpacked" ]; then
	dl="$CACHE/qemu-src/dl-${ver//[~+:]/_}"; mkdir -p "$dl"
	log "downloading qemu $ver source"
	(cd "$dl" && isolated_apt apt-get "$ISO_SUITE" source --download-only "qemu=$ver" >/dev/null)
	rm -rf "$dest" "$dest.tmp"
	dpkg-source --no-check -x "$dl"/qemu_*.dsc "$dest.tmp" >/dev/null
	mv "$dest.tmp" "$dest"
	touch "$dest/.unpacked"
fi
echo "$ver" >"$CACHE/qemu-src/current"
echo "$dest"
