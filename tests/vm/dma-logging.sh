#!/bin/bash
# VFIO DMA logging through nvme_vfio_pci (KTAP): the dma_logging suite of
# the Rust test program on VFs of host a, whose PF tracks memory changes
# (NVMe Track Memory Changes): VF0 bound to the variant driver runs every
# case, VF1 (variant driver) is closed while logging, VF2 bound to plain
# vfio-pci has no DMA logging. Then dma_logging_cli: `nvme-lm dma-log`, the
# debugging command, on VF0 once the suite has closed it. (The kernel log
# after the suite and leaks: run-tests.sh's health checks.)
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

# nvme-lm dma-log on VF0: exits 0 (every page reported was written, none
# missing) and lists the 4 read buffers dirty.
check_cli_reports_reads() {
	local out rc=0 n
	out=$("$NVME_LM" dma-log --vf "$CDEV0" --reads 4 2>&1) || rc=$?
	echo "$out"
	[ "$rc" -eq 0 ] || fail "nvme-lm dma-log: exit $rc: $(echo "$out" | tail -n1)" || return
	n=$(echo "$out" | grep -c '^dirty .*(read buffer of LBA [0-9]*)$')
	[ "$n" -eq 4 ] || fail "$n read buffer pages listed dirty, expected 4"
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
ktap_begin dma_logging_cli 1
if [[ cli_reports_reads == *"${DMA_LOG_FILTER:-}"* ]]; then
	ktap_check cli_reports_reads check_cli_reports_reads || rc=1
else
	ktap_skip cli_reports_reads "filtered out"
fi
teardown
exit $rc
