#!/bin/bash
# make bench, inside the test VM: repeated live migrations of a VF running
# I/O between two VFs bound to nvme_vfio_pci; prints the distribution of
# the downtime and of each phase; then the cost of one DMA-log sync
# (DMA_LOGGING_REPORT) against the pages dirtied, on VF0 (numbers, no
# verdict).
. "$(dirname "$0")/lib/sriov.sh"
NVME_LM=${NVME_LM:-$NVME_VFIO_REPO/tools/nvme-lm/target/release/nvme-lm}
set -e
sriov_setup 4 >/dev/null
modprobe nvme_vfio_pci
bind_vfs_vfio nvme-vfio-pci 2
echo "emulated NVMe (QEMU hw/nvme + HMLM), TCG, 1 vCPU: device and admin command times are emulation times"
"$NVME_LM" bench --vf-a "$CDEV0" --vf-b "$CDEV1" --rounds "${BENCH_ROUNDS:-50}"
echo
"$NVME_LM" bench-dma-log --vf "$CDEV0" --repeats "${BENCH_DMA_LOG_REPEATS:-20}"
