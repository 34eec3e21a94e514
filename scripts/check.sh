#!/bin/bash
# make check: every test suite of the project, summed into one closing line
# "N passed, N failed". Installs what it needs, builds what changed.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
export PATH="$HOME/.cargo/bin:$PATH"
cd "$REPO" || exit 1

PASSED=0 FAILED=0 SKIPPED=0 FAILED_NAMES=()
T0=$(date +%s)

ok() { PASSED=$((PASSED + 1)); echo "ok - $1"; }
not_ok() { FAILED=$((FAILED + 1)); FAILED_NAMES+=("$1"); echo "not ok - $1"; }
# check NAME CMD...: one test that passes if CMD exits 0.
check() {
	local name=$1; shift
	echo "=== $name"
	if "$@"; then ok "$name"; else not_ok "$name"; fi
}
# Under CI=true a skipped or filtered case is a failure.
[ "${CI:-}" != true ] || NO_SKIPS=1
add_counts() { # "passed failed skipped" from a counter, under a suite NAME
	local name=$1 p f s
	read -r p f s
	PASSED=$((PASSED + p)); FAILED=$((FAILED + f)); SKIPPED=$((SKIPPED + s))
	[ "$f" -eq 0 ] || FAILED_NAMES+=("$name ($f)")
	echo "--- $name: $p passed, $f failed, $s skipped"
}
# vm_boot BOOT WHAT CMD...: one test VM boot running CMD; its KTAP checked
# against the documents tests/vm/suites.txt pins for BOOT. VM_NVME_PROPS:
# more properties of the emulated controllers.
vm_boot() {
	local boot=$1 what=$2 rc
	shift 2
	echo "=== vm ($boot): $what (TCG, timeout ${VM_TIMEOUT:-3600} s)"
	NVME_VFIO_NVME_PROPS=$NVME_VFIO_NVME_PROPS${VM_NVME_PROPS:+,$VM_NVME_PROPS} \
		python3 tests/vm/run-vm.py --kernel-dir "$KOUT" --timeout "${VM_TIMEOUT:-3600}" \
		-- "$@" | tee "$CACHE/vm-$boot.log"
	rc=${PIPESTATUS[0]}
	vm_counts "$boot" "$rc"
}
# vm_start BOOT CMD...: the same in the background (a test VM's vCPUs
# take one host thread, so the main boot and the background ones use the
# machine's two cores; background boots run one after the other, in the
# order started); VM_OPTS: more run-vm.py options. vm_finish BOOT WHAT
# waits for it, prints what it printed and counts it.
declare -A VM_PIDS=()
vm_start() {
	local boot=$1
	shift
	# shellcheck disable=SC2086
	flock "$CACHE/vm-background.lock" python3 tests/vm/run-vm.py --kernel-dir "$KOUT" \
		--timeout "${VM_TIMEOUT:-3600}" ${VM_OPTS:-} \
		-- "$@" >"$CACHE/vm-$boot.log" 2>"$CACHE/vm-$boot.stderr" &
	VM_PIDS[$boot]=$!
	# The next one queues behind this one.
	sleep 1
}
vm_finish() {
	local boot=$1 what=$2 rc
	echo "=== vm ($boot): $what (TCG, timeout ${VM_TIMEOUT:-3600} s, in parallel)"
	wait "${VM_PIDS[$boot]}"
	rc=$?
	cat "$CACHE/vm-$boot.log" "$CACHE/vm-$boot.stderr"
	vm_counts "$boot" "$rc"
}
vm_counts() { # BOOT EXIT-STATUS
	add_counts "vm ($1)" < <(python3 tests/ktap-check.py --suites tests/vm/suites.txt \
		--boot "$1" --exit-status "$2" ${NO_SKIPS:+--no-skips} <"$CACHE/vm-$1.log" |
		tee "$CACHE/vm-$1.check" | tail -n1)
	grep '^failed: ' "$CACHE/vm-$1.check"
}
finish() {
	echo
	[ ${#FAILED_NAMES[@]} -eq 0 ] || printf 'failed: %s\n' "${FAILED_NAMES[@]}"
	echo "make check took $(( $(date +%s) - T0 )) s"
	echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
	[ "$FAILED" -eq 0 ]
	exit
}

echo "=== deps"
bash scripts/deps.sh || { not_ok deps; finish; }

# --- host tools ---------------------------------------------------------
TOOLS=tools/nvme-lm
check "tools: cargo fmt --check" cargo fmt --manifest-path $TOOLS/Cargo.toml --check
check "tools: clippy -D warnings" cargo clippy --quiet --manifest-path $TOOLS/Cargo.toml \
	--release --all-targets -- -D warnings
echo "=== tools: cargo test"
cargo build --quiet --release --manifest-path $TOOLS/Cargo.toml || not_ok "tools: build"
cargo test --release --manifest-path $TOOLS/Cargo.toml 2>&1 | tee "$CACHE/cargo-test.log" |
	grep -E '^test |^test result' | grep -v '^test result: ok. 0 passed'
# Counts are added in this shell (process substitution, not a pipeline).
add_counts "tools: cargo test" < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) {
	if ($(i) ~ /^passed/) p += $(i-1); if ($(i) ~ /^failed/) f += $(i-1);
	if ($(i) ~ /^ignored/) s += $(i-1) } } END { print p+0, f+0, s+0 }' "$CACHE/cargo-test.log")
grep -q '^test result:' "$CACHE/cargo-test.log" || not_ok "tools: cargo test did not run"

check "harness: ktap-check.py self-test" python3 tests/ktap-check.py --self-test

# --- kernel side --------------------------------------------------------
kernel_rust=$(find drivers rust -name '*.rs' 2>/dev/null | sort)
if [ -n "$kernel_rust" ]; then
	# shellcheck disable=SC2086
	check "kernel: rustfmt --check (our Rust)" rustfmt --check --edition 2021 $kernel_rust
fi
patches=$(ls patches/*.patch 2>/dev/null)
our_c=$(find drivers include -name '*.[ch]' 2>/dev/null | sort)

echo "=== qemu: build (the outer VMM, with our HMLM emulation)"
if QEMU_BIN=$(bash scripts/build-qemu.sh); then
	ok "qemu: build"
	export NVME_VFIO_QEMU=$QEMU_BIN
	export NVME_VFIO_NVME_PROPS=${NVME_VFIO_NVME_PROPS-hmlm=on}
else
	not_ok "qemu: build"
fi

# nvme-cli with the lm plugin, for the nvme_cli_lm suite (without it that
# suite fails by name in the VM).
echo "=== nvme-cli: build (trixie's, with the lm plugin)"
if NVME_CLI_BIN=$(bash scripts/build-nvme-cli.sh); then
	ok "nvme-cli: build"
	export NVME_VFIO_NVME_CLI=$NVME_CLI_BIN
else
	not_ok "nvme-cli: build"
fi

echo "=== kernel: build (LLVM, CLIPPY=1, our code warning-free)"
if [ -z "${NVME_VFIO_QEMU:-}" ]; then
	not_ok "vm: not run, no QEMU"
elif KOUT=$(bash scripts/build-kernel.sh); then
	ok "kernel: build"
	KTREE="$CACHE/linux-tree/$(basename "$KOUT")"
	if [ -n "$patches$our_c" ]; then
		# shellcheck disable=SC2086
		check "kernel: checkpatch --strict" bash -c "cd '$KTREE' &&
			{ [ -z '$patches' ] || ./scripts/checkpatch.pl --strict --no-tree -q \
				$(printf "'$REPO/%s' " $patches); } &&
			{ [ -z '$our_c' ] || ./scripts/checkpatch.pl --strict --no-tree -q -f \
				$(printf "'$REPO/%s' " $our_c); }"
	fi
	check "kernel: only nvme_vfio_pci links to the PF's live migration service" \
		bash tests/modules/lm-foreign.sh "$KTREE" "$KOUT"
	check "uapi: nvme_vfio.h layout matches the codec" bash -c \
		"gcc -Wall -Werror -I'$KOUT/usr/include' -o '$CACHE/uapi-layout' tests/uapi/nvme_vfio_layout.c && '$CACHE/uapi-layout'"
	exported_c=$(grep -l "EXPORT_SYMBOL" $our_c 2>/dev/null)
	if [ -n "$exported_c" ]; then
		# shellcheck disable=SC2086
		check "kernel: kernel-doc of exported C" bash -c "out=\$('$KTREE/scripts/kernel-doc' -none -Wall \
			$(printf "'$REPO/%s' " $exported_c include/linux/*.h) 2>&1); echo \"\$out\"; [ -z \"\$out\" ]"
	fi
	# The L2 guest of qemu_migration, booted and saved (without it that
	# suite fails by name in the VM).
	if L2_OUT=$(bash scripts/build-l2.sh); then
		ok "l2 guest: build and boot snapshot"
		export NVME_VFIO_L2=$L2_OUT
	else
		not_ok "l2 guest: build and boot snapshot"
	fi
	# One boot per entry of tests/vm/suites.txt; every document it pins must
	# come back whole (tests/ktap-check.py). The running-guest migration
	# boots its own VM, in parallel with the main one.
	vm_start guest bash tests/vm/run-tests.sh "qemu_migration bash tests/vm/qemu-migrate.sh"
	# Races on two vCPUs (round-robin TCG: tests/vm/run-vm.py), after it.
	VM_OPTS="--smp 2 --tcg-thread single" vm_start smp2 bash tests/vm/run-tests.sh --smp2
	# The main boot's controllers report Immediate Readiness (QEMU patch
	# 0009): its hundreds of VF resets (5000 in resume_fuzz) skip the
	# kernel's 100 ms wait after an FLR; the other two boots keep it.
	VM_NVME_PROPS=imm-ready=on vm_boot main "smoke, KUnit, HMLM, nvme-cli lm, variant, migration, storage, PF service, media, CDQ" \
		bash tests/vm/run-tests.sh
	vm_finish guest "qemu_migration: stock QEMU migrates a running L2 guest"
	vm_finish smp2 "PF teardown races, fault matrix, concurrency on 2 vCPUs"
else
	not_ok "kernel: build"
	not_ok "vm: not run, no kernel"
fi
finish
