# nvme-vfio: live migration of NVMe SR-IOV VFs under VFIO.
#
#   make demo    live-migrate an NVMe VF running I/O in the test VM
#   make bench   repeated migrations: downtime and phase distributions
#   make check   every test: tools, kernel build, KUnit and VM tests
#   make fuzz    fuzz a destination VF's RESUMING path (FUZZ_INPUTS, FUZZ_SEED)
#   make vm      a shell in the test VM (SR-IOV NVMe PF, Intel IOMMU)
#
# Build outputs live in $(NVME_VFIO_CACHE) (default ~/.cache/nvme-vfio).

SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: all demo bench check fuzz deps kernel qemu tools nvme-cli vm check-guest series clean-cache

all: kernel qemu tools nvme-cli

demo:
	@bash scripts/demo.sh demo

bench:
	@bash scripts/demo.sh bench

check:
	@bash scripts/check.sh

# FUZZ_INPUTS (100000) mutated migration streams into nvme_vfio_pci's
# RESUMING path, random seed (printed; FUZZ_SEED repeats it).
fuzz:
	@bash scripts/fuzz.sh

deps:
	@bash scripts/deps.sh

kernel: deps
	@bash scripts/build-kernel.sh

tools: deps
	cargo build --release --manifest-path tools/nvme-lm/Cargo.toml

qemu: deps
	@bash scripts/build-qemu.sh

nvme-cli: deps
	@bash scripts/build-nvme-cli.sh

vm: kernel tools qemu nvme-cli
	NVME_VFIO_QEMU="$$(bash scripts/build-qemu.sh)" NVME_VFIO_NVME_PROPS=$${NVME_VFIO_NVME_PROPS-hmlm=on} \
		NVME_VFIO_L2="$$(bash scripts/build-l2.sh)" NVME_VFIO_NVME_CLI="$$(bash scripts/build-nvme-cli.sh)" \
		python3 tests/vm/run-vm.py --interactive --kernel-dir "$$(bash scripts/build-kernel.sh)"

# Only the running-guest migration (make check's "guest" boot), alone.
check-guest: kernel tools qemu
	NVME_VFIO_QEMU="$$(bash scripts/build-qemu.sh)" NVME_VFIO_NVME_PROPS=$${NVME_VFIO_NVME_PROPS-hmlm=on} \
		NVME_VFIO_L2="$$(bash scripts/build-l2.sh)" \
		python3 tests/vm/run-vm.py --timeout 1800 --kernel-dir "$$(bash scripts/build-kernel.sh)" -- \
		bash tests/vm/run-tests.sh "qemu_migration bash tests/vm/qemu-migrate.sh"

series:
	@bash scripts/series.sh

clean-cache:
	rm -rf "$${NVME_VFIO_CACHE:-$$HOME/.cache/nvme-vfio}"
