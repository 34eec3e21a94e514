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
if build plain ""; then
	echo "plain: a foreign module linked against the service"; rc=1
elif ! grep -q "module uses symbol 'nvme_lm_get' from namespace 'module:nvme_vfio_pci" "$work/plain.log"; then
	tail -20 "$work/plain.log"; echo "plain: failed, but not for the service's namespace"; rc=1
else
	grep "ERROR: modpost" "$work/plain.log"
fi
if build imported 's/^    license: "GPL",$/    license: "GPL",\n    imports_ns: ["module:nvme_vfio_pci,nvme_lm_selftest"],/'; then
	echo "imported: a module importing the service's namespace linked"; rc=1
elif ! grep -q "explicitly importing namespace 'module:nvme_vfio_pci" "$work/imported.log"; then
	tail -20 "$work/imported.log"; echo "imported: failed, but not for the namespace import"; rc=1
else
	grep "ERROR: modpost" "$work/imported.log"
fi
exit $rc
