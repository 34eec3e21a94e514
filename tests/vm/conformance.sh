#!/bin/bash
# nvme_vfio_pci against controllers that differ from the reference
# emulation in ways NVMe 2.1 allows (KTAP). The emulation's test knobs
# (vendor admin command C8h on the PF, tests/qemu/patches/0005) make host
# a's controller:
#   - list no vendor-specific state format: version 0 alone cannot move a
#     controller whose BAR0 is passed through, so the VF must be plain
#     vfio-pci, say why in one line, and still work;
#   - return one entry per Secondary Controller List page: the driver must
#     page to find VF 3's and VF 4's controllers (today's first page only
#     holds VF 1's);
#   - leave CSUP clear in Migration Receive while the state header's CSATTR
#     says suspended: a migration must still succeed.
# VF2 and VF3 of host a; every knob is cleared again at the end.
. "$(dirname "$0")/lib/ktap.sh"
. "$(dirname "$0")/lib/sriov.sh"
. "$(dirname "$0")/lib/kernel-log.sh"
NVME_LM=${NVME_LM:-$NVME_VFIO_REPO/tools/nvme-lm/target/release/nvme-lm}

KNOB_CSUP_CLEAR=1
KNOB_NO_VENDOR_FORMAT=2
KNOB_SEC_LIST_MAX=3

# knob K V: set test knob K of host a's controller to V.
knob() {
	nvme admin-passthru "$PF_DEV" --opcode=0xc8 --cdw10="$1" --cdw11="$2" >/dev/null 2>&1 ||
		fail "setting test knob $1 to $2 failed"
}

clear_knobs() {
	local k
	for k in $KNOB_CSUP_CLEAR $KNOB_NO_VENDOR_FORMAT $KNOB_SEC_LIST_MAX; do knob "$k" 0; done
}

setup() {
	PF=$(pf_bdf a) || return 1
	[ "$(cat "/sys/bus/pci/devices/$PF/sriov_numvfs")" -ge 4 ] || sriov_setup 4 a || return 1
	PF_DEV=$(pci_nvme_dev "$PF") || return 1
	modprobe nvme_vfio_pci || fail "modprobe nvme_vfio_pci failed" || return
	local i
	for i in 2 3; do
		# SCIDs before any knob shortens the list pages.
		eval "VF$i=$(vf_bdf "$PF" $i) SCID$i=$(vf_scid "$PF_DEV" $((i + 1)))" || return 1
		bind_driver "$(eval echo "\$VF$i")" "" || return 1
	done
	clear_knobs
}

# bind_variant I: bind VF$I to nvme-vfio-pci; sets CDEV$I and PROBE (the
# driver's probe lines) and prints them.
bind_variant() {
	local vf d
	vf=$(eval echo "\$VF$1")
	kernel_log_mark
	bind_driver "$vf" nvme-vfio-pci || return 1
	d=$(ls "/sys/bus/pci/devices/$vf/vfio-dev" 2>/dev/null | head -n1)
	[ -n "$d" ] || fail "$vf: no vfio cdev" || return
	eval "CDEV$1=/dev/vfio/devices/$d"
	PROBE=$(suite_log | grep -E "$vf: (live migration|no live migration)" | sed 's/^\[[^]]*\] //')
	echo "$PROBE"
}

check_incomplete_format() {
	local info
	knob $KNOB_NO_VENDOR_FORMAT 1 || return
	bind_variant 2 || return
	knob $KNOB_NO_VENDOR_FORMAT 0 || return
	[ "$(echo "$PROBE" | grep -c .)" -eq 1 ] || fail "expected one probe line" || return
	echo "$PROBE" | grep -q "no live migration: none of the controller's 0 vendor state formats is known to be complete" ||
		fail "no line saying why migration is off" || return
	info=$("$NVME_LM" mig-info "$CDEV2") || fail "mig-info failed" || return
	echo "$info" | grep -qx "migration: none" || fail "migration advertised: $info" || return
	"$NVME_LM" selftest io --vf "$CDEV2" >/dev/null || fail "the VF does no I/O as plain vfio-pci" || return
	bind_driver "$VF2" ""
}

check_secondary_list_paged() {
	local i scid
	knob $KNOB_SEC_LIST_MAX 1 || return
	for i in 2 3; do
		bind_variant $i || return
		scid=$(eval echo "\$SCID$i")
		echo "$PROBE" | grep -q "live migration: secondary controller $scid$" ||
			fail "VF $((i + 1)): no migration handle for secondary controller $scid" || return
	done
}

check_csup_clear() {
	local i
	# On its own: the VFs as the case before left them, or bound now.
	knob $KNOB_SEC_LIST_MAX 0 || return
	for i in 2 3; do
		[ "$(bound_driver "$(eval echo "\$VF$i")")" = nvme-vfio-pci ] && [ -n "$(eval echo "\${CDEV$i:-}")" ] ||
			bind_variant $i >/dev/null || return
	done
	knob $KNOB_CSUP_CLEAR 1 || return
	local out rc
	out=$("$NVME_LM" migrate --vf-a "$CDEV2" --vf-b "$CDEV3" --blocks 64 2>&1)
	rc=$?
	echo "$out" | tail -n 4
	[ "$rc" -eq 0 ] ||
		fail "migration failed on a controller that reports suspension in CSATTR only" || return
	! suite_log | grep "controller state read while running" || fail "the driver refused the state"
}

teardown() {
	clear_knobs
	bind_driver "$VF2" ""
	bind_driver "$VF3" ""
}

ktap_begin driver_conformance 3
errf=$(mktemp)
if ! setup >/dev/null 2>"$errf"; then
	for t in incomplete_format_plain secondary_list_paged csup_clear_migrates; do
		ktap_not_ok "$t" "setup: $(tail -n1 "$errf")"
	done
	exit 1
fi
ktap_check incomplete_format_plain check_incomplete_format
ktap_check secondary_list_paged check_secondary_list_paged
ktap_check csup_clear_migrates check_csup_clear
teardown >/dev/null 2>&1
ktap_end
