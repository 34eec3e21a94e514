#!/bin/bash
# Host Managed Live Migration of the emulated controller (KTAP, from the
# Rust test program): conformance through admin passthrough on the PF and a
# full migration of a running VF (A = VF0) to another (B = VF1), both bound
# to vfio-pci and attached to one IOAS by the userspace NVMe client. Host b:
# its MDTS (512 KiB) lets one admin command move a whole controller state,
# which the conformance cases compare piecewise reads against; host a's
# small MDTS is the driver's (vfio_migration, pf_service).
. "$(dirname "$0")/lib/ktap.sh"
. "$(dirname "$0")/lib/sriov.sh"
NVME_LM=${NVME_LM:-$NVME_VFIO_REPO/tools/nvme-lm/target/release/nvme-lm}

setup() {
	PF=$(pf_bdf b) || return 1
	PF_DEV=$(pci_nvme_dev "$PF") || return 1
	if [ "$(cat "/sys/bus/pci/devices/$PF/sriov_numvfs")" -lt 2 ]; then
		sriov_setup 4 b || return 1
	fi
	local i vf d
	for i in 0 1; do
		vf=$(vf_bdf "$PF" $i) || return 1
		[ "$(bound_driver "$vf")" = vfio-pci ] || bind_driver "$vf" vfio-pci || return 1
		d=$(ls "/sys/bus/pci/devices/$vf/vfio-dev" | head -n1)
		[ -n "$d" ] || fail "$vf: no vfio cdev" || return
		eval "CDEV$i=/dev/vfio/devices/$d SCID$i=$(vf_scid "$PF_DEV" $((i + 1)))"
	done
}

errf=$(mktemp)
if ! setup >/dev/null 2>"$errf"; then
	ktap_begin hmlm 1
	ktap_not_ok setup "$(tail -n1 "$errf")"
	exit 1
fi
exec "$NVME_LM" selftest hmlm --pf "$PF_DEV" --vf-a "$CDEV0" --scid-a "$SCID0" \
	--vf-b "$CDEV1" --scid-b "$SCID1" ${HMLM_FILTER:+--filter "$HMLM_FILTER"}
