#!/bin/bash
# The fault matrix of nvme_vfio_pci (KTAP, from the Rust test program):
# FLR, PF controller reset and PF unbind in RUNNING_P2P, PRE_COPY, PRE_COPY_P2P, STOP,
# STOP_COPY mid-read and RESUMING mid-write; a Suspend whose admin command
# times out (nvme-pci resets the PF); the migrating process SIGKILLed during
# Suspend and during Set State; a destination left with half a stream; a PF
# controller reset during a media migration's bulk copy (VF0 opted in for
# the case: its namespace, the shared NSID 1, is the PF's too; nothing on
# the host may hold the PF's block device of it).
# VF0 (A) and VF1 (B) of host a on nvme-vfio-pci; every PF reset brings
# VFs 1-4 back online. Then the kernel log: the faults leave no warning.
. "$(dirname "$0")/lib/ktap.sh"
. "$(dirname "$0")/lib/sriov.sh"
. "$(dirname "$0")/lib/kernel-log.sh"
NVME_LM=${NVME_LM:-$NVME_VFIO_REPO/tools/nvme-lm/target/release/nvme-lm}

ADMIN_TIMEOUT=/sys/module/nvme_core/parameters/admin_timeout

# pf_reprobe SECONDS: the PF bound again to nvme with that admin command
# timeout (nvme-pci reads it when it sets up the admin queue), its VFs
# enabled and online again.
pf_reprobe() {
	local i vf
	for i in 0 1 2 3; do
		vf=$(vf_bdf "$PF" $i 2>/dev/null) && bind_driver "$vf" ""
	done
	echo "$1" >"$ADMIN_TIMEOUT" || fail "cannot set $ADMIN_TIMEOUT" || return
	echo "$PF" >/sys/bus/pci/drivers/nvme/unbind || fail "PF unbind failed" || return
	echo "$PF" >/sys/bus/pci/drivers/nvme/bind || fail "PF bind failed" || return
	PF_DEV=$(pci_nvme_dev "$PF") && wait_ctrl_live "$PF_DEV" || return
	sriov_setup 4 a
}

setup() {
	PF=$(pf_bdf a) || return 1
	OLD_TIMEOUT=$(cat "$ADMIN_TIMEOUT") || return 1
	# A Suspend that times out in seconds, not a minute.
	pf_reprobe 3 || return 1
	modprobe nvme_vfio_pci || fail "modprobe nvme_vfio_pci failed" || return
	bind_vfs_vfio nvme-vfio-pci 2 || return 1
	kernel_log_mark
}

errf=$(mktemp)
if ! setup >/dev/null 2>"$errf"; then
	ktap_begin fault_matrix 1
	ktap_not_ok setup "$(tail -n1 "$errf")"
	exit 1
fi
rc=0
"$NVME_LM" selftest faults --vf-a "$VF0" --vf-b "$VF1" --pf "$PF" \
	--vq "$VQ_PER_VF" --vi "$VI_PER_VF" ${FAULT_FILTER:+--filter "$FAULT_FILTER"} || rc=1
ktap_begin fault_matrix_kernel_log 1
# nvme-pci's own report of the timed-out Suspend is expected; nothing else.
ktap_check log_clean kernel_log_clean "possible recursive|kmemleak|use-after-free" || rc=1
pf_reprobe "$OLD_TIMEOUT" >/dev/null || { echo "# restoring the PF failed" >&2; rc=1; }
[ "$rc" -eq 0 ] && ktap_end
