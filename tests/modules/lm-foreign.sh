#!/bin/bash
# The PF's live migration service is exported to nvme_vfio_pci (and its
# test driver) only, and kernel::nvme_lm's wrappers are #[inline]: a
# foreign Rust module that calls them must not link. Builds
# tests/modules/lm_foreign three ways against the built kernel:
#   control    the same module without the service call: must build (so a
#              refusal below is the service's, not a broken build);
#   plain      modpost refuses the use of nvme_lm_get;
#   imported   importing the module: namespace explicitly is refused too.
#   lm-foreign.sh KTREE KOUT
set -uo pipefail
tree=$1 out=$2 src=$(cd "$(dirname "$0")/lm_foreign" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

build() { # NAME SED-EXPR: build a copy edited by SED-EXPR; its log in $work/NAME.log
	mkdir -p "$work/$1"
	cp "$src/Kbuild" "$src/lm_foreign.rs" "$work/$1/"
	[ -z "$2" ] || sed -i "$2" "$work/$1/lm_foreign.rs"
	make -C "$tree" O="$out" M="$work/$1" LLVM=-19 modules >"$work/$1.log" 2>&1
}

rc=0
if ! build control 's/^    Handle::get(vf)$/    let _ = vf; Err(ENODEV)/'; then
	tail -20 "$work/control.log"; echo "control: the module does not build without the service call"; rc=1
fi
# refused NAME SED-EXPR ERROR: the build edited by SED-EXPR must fail
# with modpost's ERROR (a fixed string).
refused() {
	if build "$1" "$2"; then
		echo "$1: the module linked against the service"; return 1
	elif ! grep -qF "$3" "$work/$1.log"; then
		tail -20 "$work/$1.log"; echo "$1: failed, but not with: $3"; return 1
	fi
	grep "ERROR: modpost" "$work/$1.log"
}
refused plain "" "module uses symbol 'nvme_lm_get' from namespace 'module:nvme_vfio_pci" || rc=1
refused imported 's/^    license: "GPL",$/    license: "GPL",\n    imports_ns: ["module:nvme_vfio_pci,nvme_lm_selftest"],/' \
	"explicitly importing namespace 'module:nvme_vfio_pci" || rc=1
exit $rc
