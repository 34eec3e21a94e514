#!/bin/bash
# Controller Data Queue (dirty LBA logging) of the emulated controller
# (KTAP, from the Rust test program). The ring must stay mapped while the
# controller writes it, so the PF is handed to vfio-pci (SR-IOV enabled
# through vfio-pci) and driven from userspace; this suite runs last.
. "$(dirname "$0")/lib/ktap.sh"
. "$(dirname "$0")/lib/sriov.sh"
NVME_LM=${NVME_LM:-$NVME_VFIO_REPO/tools/nvme-lm/target/release/nvme-lm}

setup() {
	PF=$(pf_bdf) || return 1
	echo 0 >"/sys/bus/pci/devices/$PF/sriov_numvfs" || fail "disabling VFs failed" || return
	# Its parameters exist once it is loaded (run alone, no suite did).
	modprobe vfio-pci || fail "modprobe vfio-pci failed" || return
	echo 1 >/sys/module/vfio_pci/parameters/enable_sriov || return 1
	echo 1 >"/sys/bus/pci/devices/$PF/sriov_drivers_autoprobe" || return 1
	bind_driver "$PF" vfio-pci || return 1
	local d
	d=$(ls "/sys/bus/pci/devices/$PF/vfio-dev" | head -n1)
	[ -n "$d" ] || fail "$PF: no vfio cdev" || return
	PF_CDEV=/dev/vfio/devices/$d
}

errf=$(mktemp)
if ! setup >/dev/null 2>"$errf"; then
	ktap_begin cdq 1
	ktap_not_ok setup "$(tail -n1 "$errf")"
	exit 1
fi
exec "$NVME_LM" selftest cdq --pf-bdf "$PF" --pf-cdev "$PF_CDEV" ${CDQ_FILTER:+--filter "$CDQ_FILTER"}
