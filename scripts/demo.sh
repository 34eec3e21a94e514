#!/bin/bash
# make demo / make bench: installs what it needs, builds the kernel, the
# emulated controller and the tools (cached), boots the test VM with HMLM
# on and runs tests/vm/$1.sh there: demo.sh live-migrates a VF running I/O
# to another VF through the VFIO uAPI; bench.sh repeats it and prints the
# numbers.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
export PATH="$HOME/.cargo/bin:$PATH"
job=${1:-demo}
cd "$REPO"
bash scripts/deps.sh
kernel=$(bash scripts/build-kernel.sh)
qemu=$(bash scripts/build-qemu.sh)
cargo build --quiet --release --manifest-path tools/nvme-lm/Cargo.toml
if [ "$job" = bench ]; then
	echo "host (no device): the media dirty set and CRC32C, nvme-lm bench-dirty"
	tools/nvme-lm/target/release/nvme-lm bench-dirty
	echo
fi
NVME_VFIO_QEMU="$qemu" NVME_VFIO_NVME_PROPS=hmlm=on \
	python3 tests/vm/run-vm.py --kernel-dir "$kernel" --timeout "${VM_TIMEOUT:-600}" \
	-- bash "tests/vm/$job.sh"
