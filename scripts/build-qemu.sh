#!/bin/bash
# Build the outer VMM of the test VM: QEMU 10.0.x from Debian's trixie
# source package plus our patches (tests/qemu/patches/series: the emulated
# NVMe controller's Host Managed Live Migration). x86_64-softmmu only, with
# just the features the test VM needs. Output lives in the cache; a stamp
# keyed by a hash of every input skips the build when nothing changed, and
# a change rebuilds incrementally (ninja) in the same directory.
#
# Prints nothing on stdout but the path of the qemu-system-x86_64 binary.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

CONFIGURE_ARGS=(
	--python=/usr/bin/python3 --target-list=x86_64-softmmu
	--without-default-features --enable-kvm --enable-tcg --enable-pixman
	--enable-virtfs --enable-attr --disable-fdt --disable-download
	--disable-docs --disable-werror --disable-install-blobs
)

src=$(bash "$REPO/scripts/fetch-qemu.sh")
ver=$(cat "$CACHE/qemu-src/current")
vdir=${ver//[~+:]/_}
tree="$CACHE/qemu-tree/$vdir"
out="$CACHE/qemu-build/$vdir"
mkdir -p "$CACHE/qemu-tree" "$out"
bin="$out/qemu-system-x86_64"

python3 "$REPO/scripts/sync-tree.py" "$src" "$tree" --series "$REPO/tests/qemu/patches/series"

key=$(hash_inputs "$ver" "${CONFIGURE_ARGS[*]}" "$REPO/tests/qemu/patches" \
	"$REPO/scripts/build-qemu.sh" "$(cc --version | head -1)")
if [ "$(cat "$out/.nvme-vfio-stamp" 2>/dev/null)" = "$key" ] && [ -x "$bin" ]; then
	log "QEMU $ver: up to date ($bin)"
	echo "$bin"; exit 0
fi

start=$(date +%s)
if [ "$(cat "$out/.nvme-vfio-configured" 2>/dev/null)" != "${CONFIGURE_ARGS[*]}" ]; then
	log "configuring QEMU $ver"
	(cd "$out" && "$tree/configure" "${CONFIGURE_ARGS[@]}" >"$out/configure.log" 2>&1) ||
		{ tail -30 "$out/configure.log" >&2; die "QEMU configure failed ($out/configure.log)"; }
	echo "${CONFIGURE_ARGS[*]}" >"$out/.nvme-vfio-configured"
fi
log "building QEMU $ver in $out (ninja -j$JOBS)"
if ! ninja -C "$out" -j"$JOBS" qemu-system-x86_64 >"$out/build.log" 2>&1; then
	grep -E -A8 'error:|FAILED' "$out/build.log" | head -60 >&2
	die "QEMU build failed ($out/build.log)"
fi
log "built in $(( $(date +%s) - start )) s"
echo "$key" >"$out/.nvme-vfio-stamp"
echo "$bin"
