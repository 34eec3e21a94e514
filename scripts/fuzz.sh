#!/bin/bash
# make fuzz: installs what it needs, builds the kernel, the emulated
# controller and the tools (cached), boots the test VM with HMLM on and
# runs tests/vm/fuzz.sh there: nvme-lm fuzz-resume feeds FUZZ_INPUTS
# (100000) mutations of real migration streams to a destination VF's
# RESUMING path with a random seed (FUZZ_SEED repeats a run), following the
# kernel log as it goes, and prints the outcome counts and the verdicts.
# Under TCG 6.5 to 7.5 inputs a second: the default takes some 4 hours
# (VM_TIMEOUT, by default enough for FUZZ_INPUTS at 4 a second).
# NVME_VFIO_KERNEL_DIR and NVME_VFIO_QEMU use a kernel build and a QEMU
# binary made elsewhere instead of building them.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
export PATH="$HOME/.cargo/bin:$PATH"
cd "$REPO"
export FUZZ_INPUTS=${FUZZ_INPUTS:-100000}
export FUZZ_SEED=${FUZZ_SEED:-0x$(od -An -N8 -tx8 /dev/urandom | tr -d ' \n')}
if [ -z "${NVME_VFIO_KERNEL_DIR:-}" ] || [ -z "${NVME_VFIO_QEMU:-}" ]; then
	bash scripts/deps.sh
fi
kernel=${NVME_VFIO_KERNEL_DIR:-$(bash scripts/build-kernel.sh)}
qemu=${NVME_VFIO_QEMU:-$(bash scripts/build-qemu.sh)}
cargo build --quiet --release --manifest-path tools/nvme-lm/Cargo.toml
echo "make fuzz: seed $FUZZ_SEED, $FUZZ_INPUTS inputs (repeat with FUZZ_SEED=$FUZZ_SEED)"
NVME_VFIO_QEMU="$qemu" NVME_VFIO_NVME_PROPS=hmlm=on \
	python3 tests/vm/run-vm.py --kernel-dir "$kernel" \
	--timeout "${VM_TIMEOUT:-$((FUZZ_INPUTS / 4 + 1200))}" -- bash tests/vm/fuzz.sh
