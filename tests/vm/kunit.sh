#!/bin/bash
# Reports the KUnit suites of our modules (run when each module loaded) as
# KTAP, from /sys/kernel/debug/kunit/<suite>/results, and the doctests of
# our Rust abstractions (rust/kernel/vfio/), picked out of the kernel
# crate's doctest suite. A suite that never ran (module missing or not
# loaded) is a failure, not an absence.
SUITES=${KUNIT_SUITES:-nvme_vfio_pci_codec nvme_vfio_pci_fsm nvme_host_lm}
MODULES=${KUNIT_MODULES:-nvme_vfio_pci}
DOCTESTS=${KUNIT_DOCTESTS:-rust_doctest_kernel_vfio_}
rc=0
for m in $MODULES; do
	[ -d "/sys/module/$m" ] || modprobe "$m" || echo "kunit: modprobe $m failed" >&2
done
for s in $SUITES; do
	f=/sys/kernel/debug/kunit/$s/results
	if [ -r "$f" ]; then
		cat "$f"
		grep -q '^\s*not ok' "$f" && rc=1
	else
		printf 'KTAP version 1\n1..1\nnot ok 1 %s # suite did not run: %s missing\n' "$s" "$f"
		rc=1
	fi
done
f=/sys/kernel/debug/kunit/rust_doctests_kernel/results
cases=$(grep -E "^\s*(not )?ok [0-9]+ $DOCTESTS" "$f" 2>/dev/null | sed 's/^\s*//')
echo "KTAP version 1"
echo "# Subtest: rust_doctests_vfio"
if [ -z "$cases" ]; then
	echo "1..1"
	echo "not ok 1 rust_doctests_vfio # no $DOCTESTS* case in $f"
	exit 1
fi
echo "1..$(echo "$cases" | wc -l)"
echo "$cases" | awk '{ sub(/ok [0-9]+ /, "ok " NR " "); print }'
echo "$cases" | grep -q '^not ok' && rc=1
exit $rc
