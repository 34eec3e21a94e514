#!/bin/bash
# nvme_vfio_pci under concurrency (KTAP, from the Rust test program): VF0
# to VF1 of host a and VF0 to VF1 of host b migrating at the same time,
# each with I/O on its own thread; then state changes, data file reads,
# resets and queries racing on host a's VF0. Then the kernel log: no
# warning, no lockdep report.
. "$(dirname "$0")/lib/ktap.sh"
. "$(dirname "$0")/lib/sriov.sh"
. "$(dirname "$0")/lib/kernel-log.sh"
NVME_LM=${NVME_LM:-$NVME_VFIO_REPO/tools/nvme-lm/target/release/nvme-lm}

# bind_pair HOST PREFIX: VF0 and VF1 of HOST on nvme-vfio-pci
# (bind_vfs_vfio); sets PREFIX0/PREFIX1 (cdevs) and adds them to VFS.
bind_pair() {
	PF=$(pf_bdf "$1") || return 1
	[ "$(cat "/sys/bus/pci/devices/$PF/sriov_numvfs")" -ge 2 ] || sriov_setup 4 "$1" || return 1
	bind_vfs_vfio nvme-vfio-pci 2 || return 1
	eval "$2""0=$CDEV0 $2""1=$CDEV1"
	VFS="$VFS $VF0 $VF1"
}

setup() {
	VFS=""
	modprobe nvme_vfio_pci || fail "modprobe nvme_vfio_pci failed" || return
	bind_pair a A && bind_pair b B || return 1
	kernel_log_mark
}

errf=$(mktemp)
if ! setup >/dev/null 2>"$errf"; then
	ktap_begin concurrency 1
	ktap_not_ok setup "$(tail -n1 "$errf")"
	exit 1
fi
rc=0
"$NVME_LM" selftest concurrency --vf-a "$A0" --vf-b "$A1" --vf-c "$B0" --vf-d "$B1" \
	${CONC_FILTER:+--filter "$CONC_FILTER"} || rc=1
ktap_begin concurrency_kernel_log 1
ktap_check log_clean kernel_log_clean "possible recursive|kmemleak|use-after-free" || rc=1
for vf in $VFS; do bind_driver "$vf" ""; done
[ "$rc" -eq 0 ] && ktap_end
