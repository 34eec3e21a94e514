#!/bin/bash
# make fuzz: installs what it needs, builds the kernel, the emulated
# controller and the tools (cached), boots the test VM with HMLM on and
# runs tests/vm/fuzz.sh there: nvme-lm fuzz-resume feeds FUZZ_INPUTS
# (100000) mutations of real migration streams to a destination VF's
# RESUMING path, then FUZZ_MEDIA_INPUTS (10000) mutations of a media
# stream to a destination with media migration on, with a random seed
# (FUZZ_SEED repeats a run), following the kernel log as it goes, and
# prints the outcome counts and the verdicts of each.
# The emulated controllers report Immediate Readiness (imm-ready=on, QEMU
# patch 0009), so the destination's reset after every input skips the
# kernel's 100 ms wait after an FLR: some 24 inputs a second under TCG,
# the default takes about 70 minutes (VM_TIMEOUT, by default enough for
# FUZZ_INPUTS at 8 a second).
# NVME_VFIO_KERNEL_DIR and NVME_VFIO_QEMU use a kernel build and a QEMU
# binary made elsewhere instead of building them.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
export PATH="$HOME/.cargo/bin:$PATH"
cd "$REPO"
export FUZZ_INPUTS=${FUZZ_INPUTS:-100000}
export FUZZ_MEDIA_INPUTS=${FUZZ_MEDIA_INPUTS:-10000}
export FUZZ_SEED=${FUZZ_SEED:-0x$(od -An -N8 -tx8 /dev/urandom | tr -d ' \n')}
if [ -z "${NVME_VFIO_KERNEL_DIR:-}" ] || [ -z "${NVME_VFIO_QEMU:-}" ]; then
	bash scripts/deps.sh
fi
kernel=${NVME_VFIO_KERNEL_DIR:-$(bash scripts/build-kernel.sh)}
qemu=${NVME_VFIO_QEMU:-$(bash scripts/build-qemu.sh)}
cargo build --quiet --release --manifest-path tools/nvme-lm/Cargo.toml
echo "make fuzz: seed $FUZZ_SEED, $FUZZ_INPUTS inputs, $FUZZ_MEDIA_INPUTS media inputs (repeat with FUZZ_SEED=$FUZZ_SEED)"
NVME_VFIO_QEMU="$qemu" NVME_VFIO_NVME_PROPS=hmlm=on,imm-ready=on \
	python3 tests/vm/run-vm.py --kernel-dir "$kernel" \
	--timeout "${VM_TIMEOUT:-$(((FUZZ_INPUTS + FUZZ_MEDIA_INPUTS) / 8 + 1200))}" -- bash tests/vm/fuzz.sh
