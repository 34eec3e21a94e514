#!/bin/bash
# Build the L2 guest of the running-guest migration (tests/l2/): a minimal
# kernel (tinyconfig + tests/config/l2.config, no modules, no debug
# options) from the same Linux tree as the test kernel, and an initramfs
# whose /init is tests/l2/l2-init.c, linked statically against that tree's
# nolibc (a 13 KiB binary: every byte of the initramfs costs boot time under
# TCG inside TCG). Then boots that guest once, here, with Debian's QEMU (the
# binary the test VM runs, from the same root) to where its init waits for
# the VF, and saves it: booted.state, which tests/vm/qemu-migrate.sh
# restores instead of booting Linux under TCG inside TCG (tests/l2/
# machine.sh). Cached like the test kernel: a stamp keyed by a hash of
# every input, the QEMU binary's version included.
#
# Prints nothing on stdout but the output directory (bzImage, initramfs.cpio).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$REPO/tests/l2/machine.sh"
STOCK_QEMU=/usr/bin/qemu-system-x86_64
QMP=(python3 "$REPO/tests/vm/lib/qmp.py")

src=$(bash "$REPO/scripts/fetch-linux.sh")
ver=$(cat "$CACHE/linux-src/current")
vdir=${ver//[~+:]/_}
out="$CACHE/l2-build/$vdir"
mkdir -p "$out"

key=$(hash_inputs "$ver" "$(clang$LLVM_SUFFIX --version | head -1)" "$(cc --version | head -1)" \
	"$REPO/tests/config/l2.config" "$REPO/tests/l2" "$REPO/scripts/build-l2.sh" \
	"$("$STOCK_QEMU" --version | head -1)" "$REPO/tests/vm/lib/qmp.py")
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

rm -rf "$out/uapi"
kmake -s headers_install INSTALL_HDR_PATH="$out/uapi"
cc -static -nostdlib -nostdinc -fno-stack-protector -fno-asynchronous-unwind-tables \
	-Os -s -Wall -Werror -isystem "$src/tools/include/nolibc" -isystem "$out/uapi/include" \
	-include nolibc.h -o "$out/init" "$REPO/tests/l2/l2-init.c" -lgcc ||
	die "L2 init build failed"
python3 "$REPO/tests/l2/mkcpio.py" "$out/init" "$out/initramfs.cpio"

# snapshot DIR: boots the guest in DIR until its init waits for the VF,
# stops it and saves it to DIR/booted.state.
snapshot() {
	local d=$1 run i
	run=$(mktemp -d)
	l2_machine "$d"
	"$STOCK_QEMU" "${L2_ARGS[@]}" -serial "file:$run/serial" \
		-qmp "unix:$run/qmp,server=on,wait=off" -daemonize -pidfile "$run/pid" ||
		die "L2 snapshot: QEMU did not start"
	for i in $(seq 600); do
		grep -q "l2: waiting for" "$run/serial" && break
		sleep 0.1
	done
	grep -q "l2: waiting for" "$run/serial" || {
		tail -n 20 "$run/serial" >&2
		kill "$(cat "$run/pid")"
		die "L2 snapshot: the guest did not reach its init in 60 s"
	}
	rm -f "$d/booted.state"
	"${QMP[@]}" "$run/qmp" stop >/dev/null &&
		"${QMP[@]}" "$run/qmp" migrate "{\"uri\": \"file:$d/booted.state\"}" >/dev/null ||
		die "L2 snapshot: migrate to a file failed"
	for i in $(seq 600); do
		"${QMP[@]}" "$run/qmp" query-migrate | grep -q '"status": "completed"' && break
		sleep 0.1
	done
	"${QMP[@]}" "$run/qmp" query-migrate | grep -q '"status": "completed"' ||
		die "L2 snapshot: saving the guest did not complete"
	"${QMP[@]}" "$run/qmp" quit >/dev/null || true
	rm -rf "$run"
}
snapshot "$out"
log "L2 guest: built in $(( $(date +%s) - start )) s"
echo "$key" >"$out/.nvme-vfio-stamp"
echo "$out"
