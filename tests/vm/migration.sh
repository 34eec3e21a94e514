#!/bin/bash
# VFIO live migration through nvme_vfio_pci (KTAP): the uAPI suite of the
# Rust test program on three VFs of host a bound to the variant driver (A =
# VF0 source, B = VF1 destination, C = VF2 for device-close cases), whose
# controller state is larger than one transfer of host a's PF, then the
# kernel log: every refused stream named by cause, no warning of any kind.
# (Leaks: run-tests.sh's kmemleak scan of the whole run.)
. "$(dirname "$0")/lib/ktap.sh"
. "$(dirname "$0")/lib/sriov.sh"
. "$(dirname "$0")/lib/kernel-log.sh"
NVME_LM=${NVME_LM:-$NVME_VFIO_REPO/tools/nvme-lm/target/release/nvme-lm}

setup() {
	PF=$(pf_bdf) || return 1
	[ "$(cat "/sys/bus/pci/devices/$PF/sriov_numvfs")" -ge 3 ] || sriov_setup 4 || return 1
	PF_DEV=$(pci_nvme_dev "$PF") || return 1
	PF_MAX_TRANSFER=$(pf_max_transfer "$PF_DEV") || return 1
	modprobe nvme_vfio_pci || fail "modprobe nvme_vfio_pci failed" || return
	bind_vfs_vfio nvme-vfio-pci 3 || return 1
	kernel_log_mark

}

teardown() {
	local i
	for i in 0 1 2; do bind_driver "$(vf_bdf "$PF" $i)" ""; done
}

check_refusals_named() {
	local log missing="" cause
	log=$(suite_log)
	for cause in "(magic)" "unsupported stream version" "different controller model" \
		"fewer queue resources" "stream checksum mismatch" "truncated" \
		"trailing bytes" "queue identifier out of range" "longer than" \
		"another namespace behind the same NSID" "different namespaces attached"; do
		echo "$log" | grep -q "migration stream rejected.*$cause" ||
			echo "$log" | grep -q "$cause" || missing="$missing '$cause'"
	done
	echo "$log" | grep "migration stream rejected" | sed 's/^\[[^]]*\] //' | sort -u
	[ -z "$missing" ] || fail "no dev_err naming:$missing"
}

check_log_clean() {
	kernel_log_clean "possible recursive|kmemleak|Oops"
}

errf=$(mktemp)
if ! setup >/dev/null 2>"$errf"; then
	ktap_begin vfio_migration 1
	ktap_not_ok setup "$(tail -n1 "$errf")"
	exit 1
fi
rc=0
"$NVME_LM" selftest migration --vf-a "$CDEV0" --vf-b "$CDEV1" --vf-c "$CDEV2" \
	--pf-max-transfer "$PF_MAX_TRANSFER" --pf "$PF_DEV" ${MIG_FILTER:+--filter "$MIG_FILTER"} || rc=1
ktap_begin vfio_migration_kernel_log 2
if [ -n "${MIG_FILTER:-}" ]; then
	ktap_skip refusals_named "MIG_FILTER set"
else
	ktap_check refusals_named check_refusals_named || rc=1
fi
ktap_check log_clean check_log_clean || rc=1
teardown
exit $rc
