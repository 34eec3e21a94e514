#!/bin/bash
# The RESUMING path of nvme_vfio_pci with media migration on, under fuzzing
# (KTAP suite media_resume_fuzz): host a's VF1 migrates to host b's VF1
# (NSID 3, both opted in, the test bed of tests/vm/lib/media.sh) and the
# stream is kept; nvme-lm fuzz-resume --media-stream thins it out (a few
# DATA records of a few blocks, a few ZERO ranges) and feeds
# MEDIA_FUZZ_INPUTS mutations of it with a fixed seed to host b's VF1,
# which takes each record by record and writes the namespace through the
# PF as it goes: bit flips, boundary values in every field (namespace
# descriptors, data headers, zero ranges included), truncation, records
# repeated, dropped, swapped, spliced, and consistent media edits (ranges
# at and past the capacity, DATA of 0 or more than 1 MiB, of another
# namespace, repeated elsewhere, with their data CRC right). Each input
# must be refused with the errno and at the write the driver's codec gives
# (oracle::Sink), or load; VF1 is reset after every input, reads RUNNING,
# takes the next RESUMING, and does real I/O on NSID 3 every 500 inputs and
# at the end. Host b's other namespaces (NSID 1, NSID 2) must not change: a
# media stream writes its own namespace only. Then the kernel log, as in
# resume-fuzz.sh.
. "$(dirname "$0")/lib/ktap.sh"
. "$(dirname "$0")/lib/sriov.sh"
. "$(dirname "$0")/lib/kernel-log.sh"
. "$(dirname "$0")/lib/media.sh"
. "$(dirname "$0")/lib/fuzz.sh"
NVME_LM=${NVME_LM:-$NVME_VFIO_REPO/tools/nvme-lm/target/release/nvme-lm}
SEED=${MEDIA_FUZZ_SEED:-0x5eed0016}
INPUTS=${MEDIA_FUZZ_INPUTS:-2000}
D=$(mktemp -d)
CASES="real_streams_load inputs_refused_or_loaded destination_usable
	other_namespaces_unchanged kernel_log_clean"

# The canaries' checksums, then the material (lib/fuzz.sh), in $D.
setup() {
	local t=$SECONDS
	media_setup || return 1
	N1=$(ns_sum b 1) && N2=$(ns_sum b 2) || return 1
	kernel_log_mark
	T_SETUP=$((SECONDS - t)) t=$SECONDS
	media_material "$D" || return 1
	T_MATERIAL=$((SECONDS - t))
}

check_canaries() {
	local n1 n2
	n1=$(ns_sum b 1) && n2=$(ns_sum b 2) || return
	echo "host b NSID 1: $N1 -> $n1, NSID 2: $N2 -> $n2"
	[ "$n1" = "$N1" ] && [ "$n2" = "$N2" ] ||
		fail "a fuzzed media stream changed a namespace other than the destination's"
}

ktap_begin media_resume_fuzz "$(echo $CASES | wc -w)"
errf=$(mktemp)
if ! setup >/dev/null 2>"$errf"; then
	for t in $CASES; do ktap_not_ok "$t" "setup: $(tail -n1 "$errf")"; done
	media_teardown >/dev/null 2>&1
	exit 1
fi
echo "# test bed and canaries: $T_SETUP s; material: $(grep -m1 '^stream' "$D/capture"), $T_MATERIAL s"
fuzz_suite_run media-fuzz --vf-b "$CDEV_B1" --media-stream "$D/media.stream" \
	--seed "$SEED" --inputs "$INPUTS"
ktap_check other_namespaces_unchanged check_canaries
ktap_check kernel_log_clean check_log
media_teardown >/dev/null 2>&1
rm -rf "$OUT" "$errf" "$D"
ktap_end
