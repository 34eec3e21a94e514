#!/bin/bash
# make demo: installs what it needs, builds the kernel, the emulated
# controller and the tools (cached), boots the test VM and live-migrates a
# VF running I/O to another VF through the VFIO uAPI (tests/vm/demo.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
export PATH="$HOME/.cargo/bin:$PATH"
cd "$REPO"
bash scripts/deps.sh
kernel=$(bash scripts/build-kernel.sh)
qemu=$(bash scripts/build-qemu.sh)
cargo build --quiet --release --manifest-path tools/nvme-lm/Cargo.toml
NVME_VFIO_QEMU="$qemu" NVME_VFIO_NVME_PROPS=hmlm=on \
	python3 tests/vm/run-vm.py --kernel-dir "$kernel" --timeout "${VM_TIMEOUT:-600}" \
	-- bash tests/vm/demo.sh
