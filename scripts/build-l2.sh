#!/bin/bash
# Build the L2 guest of the running-guest migration (tests/l2/): a minimal
# kernel (tinyconfig + tests/config/l2.config, no modules, no debug
# options) from the same Linux tree as the test kernel, and an initramfs
# whose /init is tests/l2/l2-init.c, linked statically. Cached like the test
# kernel: a stamp keyed by a hash of every input.
#
# Prints nothing on stdout but the output directory (bzImage, initramfs.cpio).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

src=$(bash "$REPO/scripts/fetch-linux.sh")
ver=$(cat "$CACHE/linux-src/current")
vdir=${ver//[~+:]/_}
out="$CACHE/l2-build/$vdir"
mkdir -p "$out"

key=$(hash_inputs "$ver" "$(clang$LLVM_SUFFIX --version | head -1)" "$(cc --version | head -1)" \
	"$REPO/tests/config/l2.config" "$REPO/tests/l2" "$REPO/scripts/build-l2.sh")
if [ "$(cat "$out/.nvme-vfio-stamp" 2>/dev/null)" = "$key" ]; then
	log "L2 guest: up to date ($out)"
	echo "$out"; exit 0
fi

kmake() {
	make -C "$src" O="$out/linux" LLVM="$LLVM_SUFFIX" CC="ccache clang$LLVM_SUFFIX" "$@"
}

start=$(date +%s)
frag="$REPO/tests/config/l2.config"
mkdir -p "$out/linux"
if ! cmp -s "$frag" "$out/.nvme-vfio-fragment"; then
	log "L2 guest: configuring (tinyconfig + l2.config)"
	kmake -s tinyconfig >/dev/null
	"$src/scripts/kconfig/merge_config.sh" -m -O "$out/linux" "$out/linux/.config" "$frag" >/dev/null
	kmake -s olddefconfig >/dev/null
	bad=0
	while IFS= read -r line; do
		case "$line" in ''|'#'*) continue ;; esac
		got=$(grep "^${line%%=*}=" "$out/linux/.config" | cut -d= -f2- || true)
		[ "${got:-n}" = "${line#*=}" ] || { log "l2 config: $line requested, got '${got:-n}'"; bad=1; }
	done <"$frag"
	[ $bad = 0 ] || die "L2 config fragment not satisfied (see above)"
	cp "$frag" "$out/.nvme-vfio-fragment"
fi
log "L2 guest: building the kernel (make -j$JOBS)"
if ! kmake -j"$JOBS" bzImage >"$out/build.log" 2>&1; then
	grep -E -B2 -A12 'error:|Error [0-9]' "$out/build.log" | tail -40 >&2
	die "L2 kernel build failed (full log: $out/build.log)"
fi
cp "$out/linux/arch/x86/boot/bzImage" "$out/bzImage"

cc -static -O2 -Wall -Werror -o "$out/init" "$REPO/tests/l2/l2-init.c" ||
	die "L2 init build failed"
python3 "$REPO/tests/l2/mkcpio.py" "$out/init" "$out/initramfs.cpio"
log "L2 guest: built in $(( $(date +%s) - start )) s"
echo "$key" >"$out/.nvme-vfio-stamp"
echo "$out"
