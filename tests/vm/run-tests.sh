#!/bin/bash
# Everything make check runs inside the VM, in order. Each suite prints one
# KTAP document on stdout; the host sums them. Exit status: 0 if all passed.
cd "$(dirname "$0")/../.." || exit 1
rc=0
bash tests/vm/smoke.sh || rc=1
bash tests/vm/kunit.sh || rc=1
bash tests/vm/hmlm.sh || rc=1
bash tests/vm/variant.sh migratable || rc=1
bash tests/vm/migration.sh || rc=1
bash tests/vm/qemu-migrate.sh || rc=1
bash tests/vm/pf-service.sh ops || rc=1
bash tests/vm/pf-service.sh io || rc=1
bash tests/vm/pf-service.sh teardown || rc=1
# Last: it takes the PF away from the nvme driver.
bash tests/vm/cdq.sh || rc=1
exit $rc
