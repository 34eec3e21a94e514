#!/bin/bash
# make fuzz, inside the test VM: nvme-lm fuzz-resume with FUZZ_SEED,
# following the kernel log as it goes (more than log_buf_len holds):
# FUZZ_INPUTS mutations of real streams of host a's VF0 fed to its VF1
# (scripts/fuzz.sh), then FUZZ_MEDIA_INPUTS mutations of a media stream fed
# to host b's VF1 with media migration on (the material and the test bed of
# tests/vm/media-fuzz.sh); either count 0 skips that part. Inputs with an
# unexpected outcome are written to the job directory (fuzz/, media-fuzz/).
# Exit status: 0 if every part ran and passed.
. "$(dirname "$0")/lib/ktap.sh"
. "$(dirname "$0")/lib/sriov.sh"
. "$(dirname "$0")/lib/media.sh"
. "$(dirname "$0")/lib/fuzz.sh"
NVME_LM=${NVME_LM:-$NVME_VFIO_REPO/tools/nvme-lm/target/release/nvme-lm}
JOB=${NVME_VFIO_JOB:-/tmp}
rc=0
if [ "${FUZZ_INPUTS:-100000}" -gt 0 ]; then
	set -e
	sriov_setup 4 a >/dev/null
	modprobe nvme_vfio_pci
	bind_vfs_vfio nvme-vfio-pci 2
	set +e
	echo "PF $PF: source $VF0 ($CDEV0), destination $VF1 ($CDEV1)"
	"$NVME_LM" fuzz-resume --vf-a "$CDEV0" --vf-b "$CDEV1" --seed "${FUZZ_SEED:?}" \
		--inputs "${FUZZ_INPUTS:-100000}" --kmsg "${FUZZ_ARGS[@]}" --dump "$JOB/fuzz" 2>&1 ||
		rc=1
	bind_driver "$VF0" "" && bind_driver "$VF1" ""
fi
if [ "${FUZZ_MEDIA_INPUTS:-10000}" -gt 0 ]; then
	D=$(mktemp -d)
	if ! { media_setup && media_material "$D"; }; then
		echo "media fuzzing: the test bed or its material failed"
		rc=1
	else
		echo "media: $(grep -m1 '^stream' "$D/capture"); destination $B1 ($CDEV_B1)"
		"$NVME_LM" fuzz-resume --vf-b "$CDEV_B1" --media-stream "$D/media.stream" \
			--seed "${FUZZ_SEED:?}" --inputs "${FUZZ_MEDIA_INPUTS:-10000}" --kmsg \
			"${FUZZ_ARGS[@]}" --dump "$JOB/media-fuzz" 2>&1 || rc=1
		cp "$D/media.stream" "$JOB/media.stream" 2>/dev/null
	fi
	media_teardown >/dev/null 2>&1
fi
[ ! -d "$JOB/fuzz" ] && [ ! -d "$JOB/media-fuzz" ] ||
	echo "the real streams and the inputs kept are in the job directory's fuzz/ and media-fuzz/"
exit $rc
