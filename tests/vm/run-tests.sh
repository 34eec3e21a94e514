#!/bin/bash
# Everything make check runs inside the VM, in order. Each suite prints its
# KTAP document(s) on stdout. After every suite this script checks the
# kernel's health: the log since the previous check (read by sequence number,
# never cleared) and new taint flags. When all have run it prints two more
# documents: suite_exit (each suite's exit status) and kernel_health (boot,
# each suite, and a kmemleak scan of the whole run). tests/vm/suites.txt pins
# every document and its plan: a suite that dies, hangs or is dropped from
# this list fails make check by name.
# Exit status: 0 if every suite and every check passed.
cd "$(dirname "$0")/../.." || exit 1
. tests/vm/lib/ktap.sh
. tests/vm/lib/kernel-log.sh

SUITES=(
	"smoke bash tests/vm/smoke.sh"
	"kunit bash tests/vm/kunit.sh"
	"hmlm bash tests/vm/hmlm.sh"
	"nvme_cli_lm bash tests/vm/nvme-cli.sh"
	"variant_migratable bash tests/vm/variant.sh migratable"
	"variant_plain bash tests/vm/variant.sh plain"
	"vfio_migration bash tests/vm/migration.sh"
	"driver_conformance bash tests/vm/conformance.sh"
	"resume_fuzz bash tests/vm/resume-fuzz.sh"
	"dma_logging bash tests/vm/dma-logging.sh"
	"storage bash tests/vm/storage.sh"
	"pf_service_ops bash tests/vm/pf-service.sh ops"
	"pf_service_io bash tests/vm/pf-service.sh io"
	"pf_service_media bash tests/vm/pf-service.sh media"
	# The longest (media copies of 256 MiB namespaces under load): late,
	# so that a slow run costs only itself at the VM's timeout.
	"media_migration bash tests/vm/media.sh"
	"media_resume_fuzz bash tests/vm/media-fuzz.sh"
	# Last: it takes the PF away from the nvme driver.
	"cdq bash tests/vm/cdq.sh"
)
# A run of only some suites ("NAME CMD..." each), for development.
# The boot with two vCPUs (make check's "smp2"): races and faults.
SMP2_SUITES=(
	"pf_service_teardown bash tests/vm/pf-service.sh teardown"
	"fault_matrix bash tests/vm/faults.sh"
	"concurrency bash tests/vm/concurrency.sh"
)
if [ "${1:-}" = --smp2 ]; then
	SUITES=("${SMP2_SUITES[@]}")
elif [ $# -gt 0 ]; then
	SUITES=("$@")
fi

state=$(mktemp -d)
exits=() health=() rc=0

# health NAME CMD...: one kernel_health result; what CMD printed becomes
# diagnostic lines of the document the suite just printed.
health() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then
		health+=("ok NUM $name")
	else
		health+=("not ok NUM $name # $(tail -n1 <<<"$out" | tr -d '\n' | cut -c1-200)")
		rc=1
	fi
	[ -z "$out" ] || sed 's/^/# /' <<<"$out"
}

# Boot: what the kernel said before any test. Leaks found at boot are not
# ours to fix unless our code allocated them; the rest is the baseline the
# end-of-run scan is compared against (kmemleak_baseline clears it).
echo "# boot: $(cut -d' ' -f1 /proc/uptime) s since the kernel started, vCPUs: $(nproc)"
health boot kernel_health_step "$state"
t0=$SECONDS
health boot_kmemleak kmemleak_baseline "nvme|vfio"
echo "# boot kmemleak scan: $((SECONDS - t0)) s"

for s in "${SUITES[@]}"; do
	read -r name cmd <<<"$s"
	t0=$SECONDS
	bash -c "$cmd"
	st=$?
	echo "# $name: $((SECONDS - t0)) s"
	if [ "$st" -eq 0 ]; then
		exits+=("ok NUM $name")
	else
		exits+=("not ok NUM $name # exit status $st")
		rc=1
	fi
	health "$name" kernel_health_step "$state"
done
t0=$SECONDS
health kmemleak kmemleak_none
echo "# kmemleak scan: $((SECONDS - t0)) s"

print_doc() { # NAME RESULTS...
	local name=$1 i=0 r
	shift
	echo "KTAP version 1"
	echo "# Subtest: $name"
	echo "1..$#"
	for r in "$@"; do
		i=$((i + 1))
		echo "${r/NUM/$i}"
	done
}
print_doc suite_exit "${exits[@]}"
print_doc kernel_health "${health[@]}"
rm -rf "$state"
exit $rc
