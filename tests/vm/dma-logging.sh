#!/bin/bash
# VFIO DMA logging through nvme_vfio_pci (KTAP): the dma_logging suite of
# the Rust test program on VFs of host a, whose PF tracks memory changes
# (NVMe Track Memory Changes): VF0 bound to the variant driver runs every
# case, VF1 (variant driver) is closed while logging, VF2 bound to plain
# vfio-pci has no DMA logging. (The kernel log after the suite and leaks:
# run-tests.sh's health checks.)
. "$(dirname "$0")/lib/ktap.sh"
. "$(dirname "$0")/lib/sriov.sh"
NVME_LM=${NVME_LM:-$NVME_VFIO_REPO/tools/nvme-lm/target/release/nvme-lm}

setup() {
	PF=$(pf_bdf) || return 1
	[ "$(cat "/sys/bus/pci/devices/$PF/sriov_numvfs")" -ge 3 ] || sriov_setup 4 || return 1
	modprobe nvme_vfio_pci || fail "modprobe nvme_vfio_pci failed" || return
	bind_vfs_vfio nvme-vfio-pci 2 || return 1
	VF_PLAIN=$(vf_bdf "$PF" 2) || return 1
	bind_driver "$VF_PLAIN" vfio-pci || return 1
	local d
	for d in "/sys/bus/pci/devices/$VF_PLAIN/vfio-dev"/*; do break; done
	[ -e "$d" ] || fail "$VF_PLAIN: no vfio cdev under vfio-pci" || return
	CDEV_PLAIN=/dev/vfio/devices/${d##*/}
}

teardown() {
	local i
	for i in 0 1 2; do bind_driver "$(vf_bdf "$PF" $i)" ""; done
}

errf=$(mktemp)
if ! setup >/dev/null 2>"$errf"; then
	ktap_begin dma_logging 1
	ktap_not_ok setup "$(tail -n1 "$errf")"
	rm -f "$errf"
	exit 1
fi
rm -f "$errf"
rc=0
"$NVME_LM" selftest dma-logging --vf "$CDEV0" --vf-c "$CDEV1" --vf-plain "$CDEV_PLAIN" \
	${DMA_LOG_FILTER:+--filter "$DMA_LOG_FILTER"} || rc=1
teardown
exit $rc
