#!/bin/bash
# make fuzz, inside the test VM: nvme-lm fuzz-resume with FUZZ_SEED and
# FUZZ_INPUTS (scripts/fuzz.sh) on host a's VF0 (source of the real streams)
# and VF1 (the destination fed with their mutations), following the kernel
# log as it goes (more than log_buf_len holds); inputs with an unexpected
# outcome are written to the job directory (fuzz/). Exit status: the tool's.
. "$(dirname "$0")/lib/ktap.sh"
. "$(dirname "$0")/lib/sriov.sh"
. "$(dirname "$0")/lib/fuzz.sh"
NVME_LM=${NVME_LM:-$NVME_VFIO_REPO/tools/nvme-lm/target/release/nvme-lm}
set -e
sriov_setup 4 a >/dev/null
modprobe nvme_vfio_pci
bind_vfs_vfio nvme-vfio-pci 2
set +e
echo "PF $PF: source $VF0 ($CDEV0), destination $VF1 ($CDEV1)"
"$NVME_LM" fuzz-resume --vf-a "$CDEV0" --vf-b "$CDEV1" --seed "${FUZZ_SEED:?}" \
	--inputs "${FUZZ_INPUTS:-100000}" --io-every 500 --timeout 60 --kmsg \
	"${FUZZ_GAP_ARGS[@]}" \
	--dump "${NVME_VFIO_JOB:-/tmp}/fuzz" "$@" 2>&1
rc=$?
[ ! -d "${NVME_VFIO_JOB:-/tmp}/fuzz" ] ||
	echo "the real streams and the inputs kept are in the job directory's fuzz/"
exit $rc
