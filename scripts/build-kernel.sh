#!/bin/bash
# Build the test kernel: pristine Linux 7.3 + our overlay + patches/series,
# configured from tests/config/guest.config, with LLVM 19, ccache and
# CLIPPY=1. Output lives in the cache; a stamp keyed by a hash of every input
# makes a no-change run return at once, and any change is an incremental
# Kbuild build in the same output directory.
#
# Prints nothing on stdout but the output directory.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
export PATH="$HOME/.cargo/bin:$PATH"

src=$(bash "$REPO/scripts/fetch-linux.sh")
ver=$(cat "$CACHE/linux-src/current")
vdir=${ver//[~+:]/_}
tree="$CACHE/linux-tree/$vdir"
out="$CACHE/linux-build/$vdir"
mkdir -p "$CACHE/linux-tree" "$out"

python3 "$REPO/scripts/sync-tree.py" "$src" "$tree" \
	--overlay "$REPO" drivers,include,rust,Documentation --series "$REPO/patches/series"

toolchain="$(rustc -V) $(bindgen --version 2>&1) $(clang$LLVM_SUFFIX --version | head -1)"
key=$(hash_inputs "$ver" "$toolchain" "$REPO/tests/config/guest.config" \
	"$REPO/scripts/build-kernel.sh" "$REPO/patches" \
	"$REPO/drivers" "$REPO/include" "$REPO/rust")
if [ "$(cat "$out/.nvme-vfio-stamp" 2>/dev/null)" = "$key" ]; then
	log "Linux $ver: up to date ($out)"
	echo "$out"; exit 0
fi

kmake() {
	make -C "$tree" O="$out" LLVM="$LLVM_SUFFIX" CC="ccache clang$LLVM_SUFFIX" "$@"
}

frag="$REPO/tests/config/guest.config"
if ! cmp -s "$frag" "$out/.nvme-vfio-fragment"; then
	log "configuring (allnoconfig + guest.config)"
	kmake -s allnoconfig >/dev/null
	"$tree/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" "$frag" >/dev/null
	kmake -s olddefconfig >/dev/null
	# Every requested symbol must have survived dependency resolution.
	bad=0
	while IFS= read -r line; do
		case "$line" in ''|'#'*) continue ;; esac
		sym=${line%%=*} want=${line#*=}
		if [ "$want" = n ]; then
			grep -q "^$sym=" "$out/.config" && { log "config: $sym is set, wanted n"; bad=1; }
		else
			got=$(grep "^$sym=" "$out/.config" | cut -d= -f2- || true)
			[ "$got" = "$want" ] || { log "config: $sym=$want requested, got '${got:-unset}'"; bad=1; }
		fi
	done <"$frag"
	[ $bad = 0 ] || die "config fragment not satisfied (see above)"
	cp "$frag" "$out/.nvme-vfio-fragment"
fi

log "building Linux $ver in $out (make -j$JOBS, CLIPPY=1)"
start=$(date +%s)
if ! kmake -j"$JOBS" CLIPPY=1 >"$out/build.log" 2>&1; then
	grep -E -B2 -A12 'error(\[E[0-9]+\])?:|Error [0-9]' "$out/build.log" | tail -80 >&2
	die "kernel build failed (full log: $out/build.log)"
fi
kmake -s headers_install >/dev/null
rm -rf "$out/modroot"
kmake -s INSTALL_MOD_PATH="$out/modroot" modules_install >/dev/null 2>&1 ||
	die "modules_install failed"

# Our code must build warning-free (C and Rust, clippy included). Objects
# that warned are removed so the next run compiles and reports them again.
if python3 "$REPO/scripts/our-warnings.py" "$REPO" <"$out/build.log" >&2; then :; else
	python3 "$REPO/scripts/our-warnings.py" --objects "$REPO" <"$out/build.log" |
		while read -r o; do rm -f $out/$o; done
	die "warnings in our code (above)"
fi
log "built in $(( $(date +%s) - start )) s: $(make -s -C "$tree" O="$out" kernelrelease 2>/dev/null)"
echo "$key" >"$out/.nvme-vfio-stamp"
echo "$out"
