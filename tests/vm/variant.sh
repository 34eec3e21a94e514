#!/bin/bash
# nvme_vfio_pci, the variant driver (KTAP): it binds an NVMe VF through
# driver_override, takes the VF's migration handle when the PF supports
# Host Managed Live Migration (and serves it as plain vfio-pci when not),
# the VF works through VFIO as under vfio-pci, its VFIO migration features
# are STOP_COPY | P2P | PRE_COPY (none without HMLM), and it unbinds,
# rebinds and unloads cleanly.
#   variant.sh migratable|plain
. "$(dirname "$0")/lib/ktap.sh"
. "$(dirname "$0")/lib/sriov.sh"
. "$(dirname "$0")/lib/kernel-log.sh"
NVME_LM=${NVME_LM:-$NVME_VFIO_REPO/tools/nvme-lm/target/release/nvme-lm}
EXPECT=${1:-migratable}

# migratable: host a's PF (HMLM); plain: host c's (none).
HOST=a
[ "$EXPECT" = migratable ] || HOST=c

setup() {
	PF=$(pf_bdf $HOST) || return 1
	PF_DEV=$(pci_nvme_dev "$PF") || return 1
	[ "$(cat "/sys/bus/pci/devices/$PF/sriov_numvfs")" -ge 1 ] || sriov_setup 4 $HOST || return 1
	VF=$(vf_bdf "$PF" 0) || return 1
	SCID=$(vf_scid "$PF_DEV" 1) || return 1
	modprobe nvme_vfio_pci || fail "modprobe nvme_vfio_pci failed" || return
	kernel_log_mark
}

check_binds() {
	# What libvirt does: of the modules whose vfio_pci: alias matches the
	# VF's modalias (vfio-pci's own matches every device), the one with the
	# most specific alias (fewest wildcards) is the variant driver to use.
	local alias mod
	alias="vfio_$(cat "/sys/bus/pci/devices/$VF/modalias")"
	mod=$(modprobe -R "$alias" 2>/dev/null | python3 -c '
import fnmatch, subprocess, sys
alias, best = sys.argv[1], []
for mod in sys.stdin.read().split():
    pats = subprocess.run(["modinfo", "-F", "alias", mod], capture_output=True, text=True).stdout.split()
    wild = [p.count("*") for p in pats if fnmatch.fnmatchcase(alias, p)]
    if wild:
        best.append((min(wild), mod))
        print(f"{mod}: alias with {min(wild)} wildcards", file=sys.stderr)
print(min(best)[1] if best else "")' "$alias")
	echo "$alias -> ${mod:-nothing}"
	[ "$mod" = nvme_vfio_pci ] || fail "$alias resolves to '${mod}', not nvme_vfio_pci" || return
	bind_driver "$VF" nvme-vfio-pci || return 1
	local msg
	msg=$(suite_log | grep -E "$VF: (live migration|no live migration)")
	echo "$msg"
	case $EXPECT in
	migratable) echo "$msg" | grep -q "live migration: secondary controller $SCID$" ||
		fail "no migration handle for secondary controller $SCID" || return ;;
	plain) echo "$msg" | grep -q "no live migration" ||
		fail "expected plain vfio-pci behaviour on a PF without HMLM" || return ;;
	esac
}

check_io() {
	local d
	d=$(ls "/sys/bus/pci/devices/$VF/vfio-dev" 2>/dev/null | head -n1)
	[ -n "$d" ] || fail "$VF: no VFIO cdev under nvme-vfio-pci" || return
	"$NVME_LM" selftest io --vf "/dev/vfio/devices/$d" | grep -E "^# [0-9]|^not ok" || true
	"$NVME_LM" selftest io --vf "/dev/vfio/devices/$d" >/dev/null || return
	local info want
	info=$("$NVME_LM" mig-info "/dev/vfio/devices/$d") || fail "mig-info failed" || return
	echo "$info"
	case $EXPECT in
	migratable) want="migration: STOP_COPY | P2P | PRE_COPY" ;;
	plain) want="migration: none" ;;
	esac
	echo "$info" | grep -qx "$want" || fail "expected '$want'"
}

check_unbind_unload() {
	bind_driver "$VF" "" || return 1
	bind_driver "$VF" nvme-vfio-pci || fail "rebind failed" || return
	bind_driver "$VF" "" || return 1
	rmmod nvme_vfio_pci || fail "rmmod nvme_vfio_pci failed" || return
	modprobe nvme_vfio_pci || fail "modprobe after rmmod failed" || return
	kernel_log_clean "outlives" || return
}

ktap_begin "variant_$EXPECT" 3
errf=$(mktemp)
if ! setup >/dev/null 2>"$errf"; then
	for t in binds io unbind_rebind_unload; do ktap_not_ok "$t" "setup: $(tail -n1 "$errf")"; done
	exit 1
fi
ktap_check binds check_binds
ktap_check vfio_io check_io
ktap_check unbind_rebind_unload check_unbind_unload
ktap_end
