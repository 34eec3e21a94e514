#!/bin/bash
# Fetch Linux 7.3 (Debian's linux-source-7.3 binary package from
# trixie-backports: upstream 7.3.y plus Debian's patches) into the cache and
# print the path of the unpacked, pristine tree.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

ISO_SUITE=$LINUX_SUITE
pristine_for() { echo "$CACHE/linux-src/${1//[~+:]/_}"; }

# Reuse a tree we already unpacked unless asked to look for a newer one.
if [ -z "${REFRESH:-}" ] && [ -f "$CACHE/linux-src/current" ]; then
	ver=$(cat "$CACHE/linux-src/current")
	if [ -f "$(pristine_for "$ver")/.unpacked" ]; then
		pristine_for "$ver"; exit 0
	fi
fi

log "apt update ($ISO_SUITE, isolated)"
isolated_apt apt-get "$ISO_SUITE" update >/dev/null
ver=$(isolated_apt apt-cache "$ISO_SUITE" policy "$LINUX_PKG" 2>/dev/null |
	awk '/Candidate:/ {print $2}')
[ -n "$ver" ] && [ "$ver" != "(none)" ] || die "$LINUX_PKG not found in $ISO_SUITE"
dest=$(pristine_for "$ver")
if [ ! -f "$dest/.unpacked" ]; then
	dl="$CACHE/linux-src/deb"; mkdir -p "$dl"
	if ! ls "$dl"/"${LINUX_PKG}_${ver//:/%3a}"_all.deb >/dev/null 2>&1; then
		log "downloading $LINUX_PKG $ver"
		(cd "$dl" && isolated_apt apt-get "$ISO_SUITE" download "$LINUX_PKG=$ver" >/dev/null)
	fi
	deb=$(ls "$dl"/"${LINUX_PKG}"_*"${ver##*:}"*_all.deb | head -1)
	log "unpacking $deb"
	rm -rf "$dest" "$dest.tmp"; mkdir -p "$dest.tmp/x"
	dpkg -x "$deb" "$dest.tmp/x"
	tar -C "$dest.tmp" -xf "$dest.tmp"/x/usr/src/${LINUX_PKG}.tar.xz
	rm -rf "$dest.tmp/x"
	mv "$dest.tmp/${LINUX_PKG}" "$dest"; rmdir "$dest.tmp"
	touch "$dest/.unpacked"
fi
echo "$ver" >"$CACHE/linux-src/current"
echo "$dest"
