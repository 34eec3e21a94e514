#!/bin/bash
# The RESUMING path of nvme_vfio_pci under fuzzing (KTAP): nvme-lm
# fuzz-resume takes real streams of host a's VF0 (a guest running I/O, PRE_COPY
# then STOP_COPY, and smaller shapes), then feeds RESUME_FUZZ_INPUTS mutations
# of them with a fixed seed to VF1: each must be refused with the errno the
# driver's codec gives, at the write or at RESUMING -> STOP, or load; VF1 is
# reset after every input (never run), must read RUNNING and take the next
# RESUMING, and does real I/O every 500 inputs and at the end. Then the
# kernel log: no warning of any kind, and the driver's "migration stream
# rejected" lines rate-limited (user-triggerable). Both VFs are unbound at
# the end. media-fuzz.sh does the same to a destination with media
# migration on. make fuzz runs the same
# with a random seed and many more inputs (scripts/fuzz.sh).
#
# A stream that passes every check of the driver but that the device
# refuses, changed only in fields the driver checks itself, fails
# inputs_refused_or_loaded (--strict-gaps) unless every field changed is a
# known gap of the driver (KNOWN_GAPS, tests/vm/lib/fuzz.sh).
. "$(dirname "$0")/lib/ktap.sh"
. "$(dirname "$0")/lib/sriov.sh"
. "$(dirname "$0")/lib/kernel-log.sh"
. "$(dirname "$0")/lib/fuzz.sh"
NVME_LM=${NVME_LM:-$NVME_VFIO_REPO/tools/nvme-lm/target/release/nvme-lm}
SEED=${RESUME_FUZZ_SEED:-0x5eed0015}
INPUTS=${RESUME_FUZZ_INPUTS:-5000}
CASES="real_streams_load inputs_refused_or_loaded destination_usable kernel_log_clean"

setup() {
	PF=$(pf_bdf a) || return 1
	[ "$(cat "/sys/bus/pci/devices/$PF/sriov_numvfs")" -ge 2 ] || sriov_setup 4 a || return 1
	modprobe nvme_vfio_pci || fail "modprobe nvme_vfio_pci failed" || return
	bind_vfs_vfio nvme-vfio-pci 2 || return 1
	kernel_log_mark
}

teardown() {
	local i
	for i in 0 1; do bind_driver "$(vf_bdf "$PF" $i)" ""; done
}

ktap_begin resume_fuzz 4
errf=$(mktemp)
if ! setup >/dev/null 2>"$errf"; then
	for t in $CASES; do ktap_not_ok "$t" "setup: $(tail -n1 "$errf")"; done
	exit 1
fi
fuzz_suite_run resume-fuzz --vf-a "$CDEV0" --vf-b "$CDEV1" --seed "$SEED" --inputs "$INPUTS"
ktap_check kernel_log_clean check_log
teardown >/dev/null 2>&1
rm -f "$OUT" "$errf"
ktap_end
