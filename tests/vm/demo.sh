#!/bin/bash
# make demo, inside the test VM: an NVMe VF running the userspace client's
# I/O (A = VF0) is live-migrated to another VF (B = VF1) through the VFIO
# migration uAPI of nvme_vfio_pci, with no VMM; prints the report.
. "$(dirname "$0")/lib/sriov.sh"
NVME_LM=${NVME_LM:-$NVME_VFIO_REPO/tools/nvme-lm/target/release/nvme-lm}
set -e
sriov_setup 4 >/dev/null
modprobe nvme_vfio_pci
echo "PF $PF ($PF_DEV): $(cat "/sys/bus/pci/devices/$PF/sriov_numvfs") VFs, Host Managed Live Migration"
"$NVME_LM" caps "$PF_DEV" | sed -n '1,6p' | sed 's/^/  /'
bind_vfs_vfio nvme-vfio-pci 2
for vf in "$VF0" "$VF1"; do
	echo "$vf -> nvme-vfio-pci ($(dmesg | grep "$vf: live migration" | tail -n1 | sed 's/.*: live/live/'))"
done
echo
"$NVME_LM" mig-info "$CDEV0" | sed 's/^/source: /'
echo
"$NVME_LM" migrate --vf-a "$CDEV0" --vf-b "$CDEV1" --blocks "${DEMO_BLOCKS:-256}"
echo
echo "kernel log (nvme-vfio-pci):"
dmesg | grep -E "nvme-vfio-pci.*(migration|rejected|failed)" | sed 's/^\[[^]]*\] /  /'
