#!/bin/bash
# Reports the KUnit suites of our modules (run when each module loaded) as
# KTAP, from /sys/kernel/debug/kunit/<suite>/results. A suite that never ran
# (module missing or not loaded) is a failure, not an absence.
SUITES=${KUNIT_SUITES:-nvme_vfio_pci_codec nvme_vfio_pci_fsm nvme_host_lm}
MODULES=${KUNIT_MODULES:-nvme_vfio_pci}
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
exit $rc
