#!/bin/bash
# Live migration of a running guest driven by stock QEMU (KTAP). Debian's
# QEMU runs an L2 guest inside the test VM (tests/l2/: a minimal kernel and
# an init that loops write/read/verify through Linux's nvme driver, with a
# checksum per block) with one NVMe VF bound to nvme_vfio_pci passed through
# with vfio-pci (iommufd backend). QEMU migrates it with its own VFIO
# migration code (PRE_COPY with switchover-ack, STOP_COPY, RESUMING) while
# the guest's I/O runs: the controller is live at the switchover (queues,
# MSI-X, commands in flight) and the guest's loop must go on on the
# destination, every block verified, with no I/O error, timeout or reset
# in its log. QEMU's own downtime and total time are recorded, and compared
# with the same guest without the VF. A destination VF with fewer queue
# resources refuses the source during PRE_COPY: the migration fails before
# the source's device ever reaches STOP_COPY, the source guest keeps running
# and its I/O goes on; the source VF works afterwards.
. "$(dirname "$0")/lib/ktap.sh"
. "$(dirname "$0")/lib/sriov.sh"
. "$(dirname "$0")/lib/kernel-log.sh"
NVME_LM=${NVME_LM:-$NVME_VFIO_REPO/tools/nvme-lm/target/release/nvme-lm}
STOCK_QEMU=${STOCK_QEMU:-/usr/bin/qemu-system-x86_64}
QMP="python3 $(dirname "$0")/lib/qmp.py"
D=$(mktemp -d)
# The L2 guest (scripts/build-l2.sh), passed in by tests/vm/run-vm.py.
L2=${L2_DIR:-}

setup() {
	[ -x "$STOCK_QEMU" ] || fail "no $STOCK_QEMU" || return
	[ -r "$L2/bzImage" ] && [ -r "$L2/initramfs.cpio" ] ||
		fail "no L2 guest in '$L2' (scripts/build-l2.sh; L2_DIR)" || return
	PF=$(pf_bdf) || return 1
	[ "$(cat "/sys/bus/pci/devices/$PF/sriov_numvfs")" -ge 2 ] || sriov_setup 4 || return 1
	modprobe nvme_vfio_pci || fail "modprobe nvme_vfio_pci failed" || return
	PF_DEV=$(pci_nvme_dev "$PF") || return 1
	# VF3: one I/O queue pair fewer than the others.
	VF3=$(vf_bdf "$PF" 3) || return 1
	bind_driver "$VF3" "" || return 1
	VQ_PER_VF=$((VQ_PER_VF - 1)) online_vf "$PF_DEV" "$(vf_scid "$PF_DEV" 4)" || return 1
	bind_driver "$VF3" nvme-vfio-pci || return 1
	bind_vfs_vfio nvme-vfio-pci 2 || return 1
	kernel_log_mark
}

restore_vf3() {
	bind_driver "$VF3" "" && online_vf "$PF_DEV" "$(vf_scid "$PF_DEV" 4)"
}

# start NAME VF|none [QEMU ARGS...]: the L2 guest, running, with the VF
# passed through (none: without a VF, the guest idles). Its serial console
# goes to $D/NAME.serial, QEMU's VFIO migration state changes to
# $D/NAME.trace.
start() {
	local name=$1 vf=$2 dev=() extra=""
	shift 2
	if [ "$vf" = none ]; then
		extra="l2.nvme=0"
	else
		dev=(-object iommufd,id=iommufd0
			-device "vfio-pci,sysfsdev=/sys/bus/pci/devices/$vf,iommufd=iommufd0,enable-migration=on,rombar=0,id=vf")
	fi
	: >"$D/$name.serial"
	# qboot: the firmware that only boots -kernel, much faster than
	# SeaBIOS under TCG in TCG; 32 MiB: less memory for VFIO to map.
	"$STOCK_QEMU" -M q35 -accel tcg -m 32 -nodefaults -display none \
		-L /usr/share/qemu -L /usr/share/seabios -bios qboot.rom "${dev[@]}" \
		-kernel "$L2/bzImage" -initrd "$L2/initramfs.cpio" \
		-append "console=ttyS0 loglevel=5 $extra" -serial "file:$D/$name.serial" \
		-trace "enable=vfio_migration_set_state,file=$D/$name.trace" \
		-qmp "unix:$D/$name.qmp,server=on,wait=off" -daemonize -pidfile "$D/$name.pid" \
		"$@" 2>"$D/$name.err" || fail "$name: $(tail -n1 "$D/$name.err")"
}

# stop NAME: quits that QEMU (if it still runs) and waits for it.
stop() {
	[ -S "$D/$1.qmp" ] && $QMP "$D/$1.qmp" quit >/dev/null 2>&1
	[ -f "$D/$1.pid" ] && while kill -0 "$(cat "$D/$1.pid")" 2>/dev/null; do sleep 0.2; done
	rm -f "$D/$1.qmp" "$D/$1.pid"
	return 0
}

stop_all() {
	stop src
	stop dst
	rm -f "$D/mig.sock"
}

# rounds FILE: per worker of the L2 guest, the rounds it verified in FILE
# ("W:N ..." for the workers that reported any).
rounds() {
	awk '/l2: worker [0-9]+ round [0-9]+:/ { n[$3]++ }
		END { for (w in n) printf "%s:%d ", w, n[w] }' "$1"
}

# wait_rounds FILE N SECONDS: until every one of the 4 workers verified at
# least N rounds in FILE; fails on a guest failure or the timeout.
wait_rounds() {
	local f=$1 n=$2 i
	for i in $(seq $(($3 * 5))); do
		guest_failed "$f" && return 1
		[ "$(awk -v n="$n" '/l2: worker [0-9]+ round [0-9]+:/ { c[$3]++ }
			END { k = 0; for (w in c) if (c[w] >= n) k++; print k }' "$f")" = 4 ] && return 0
		sleep 0.2
	done
	fail "$(basename "$f"): after $3 s, rounds per worker: $(rounds "$f")"
}

# guest_failed FILE: the guest reported a failure, or its kernel an I/O
# error, a timeout or a controller reset.
guest_failed() {
	local bad
	bad=$(grep -E "l2: FAIL|nvme.*(timeout|reset|abort|I/O error|failed)|I/O error|Oops|BUG|panic" "$1" |
		head -n 3)
	[ -n "$bad" ] || return 1
	fail "$(basename "$1"): $bad"
}

# migrate SRC DST: migrates the running guest with switchover-ack; prints
# QEMU's numbers (query-migrate); sets ST (status), DOWNTIME and TOTAL (ms).
migrate() {
	local t0=$SECONDS t1
	stop_all
	start src "$1" || return
	start dst "$2" -incoming "unix:$D/mig.sock" || return
	if [ "$1" = none ]; then
		wait_for_line "$D/src.serial" "l2: no nvme" 120 || return
	else
		# The guest's I/O runs: every worker verified a round.
		wait_rounds "$D/src.serial" 1 300 || return
	fi
	t1=$SECONDS
	# Switchover-ack: the destination acknowledges the PRE_COPY data (our
	# compatibility record) before the source may stop.
	local caps='{"capabilities": [{"capability": "return-path", "state": true},
		{"capability": "switchover-ack", "state": true}]}'
	$QMP "$D/src.qmp" migrate-set-capabilities "$caps" >/dev/null || return
	$QMP "$D/dst.qmp" migrate-set-capabilities "$caps" >/dev/null || return
	$QMP "$D/src.qmp" migrate "{\"uri\": \"unix:$D/mig.sock\"}" >/dev/null || return
	local i out
	for i in $(seq 1500); do
		out=$($QMP "$D/src.qmp" query-migrate) || return
		ST=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("status"))')
		case $ST in completed | failed | cancelled) break ;; esac
		sleep 0.2
	done
	# shellcheck disable=SC2046
	set -- $(echo "$out" | python3 -c 'import json,sys; m=json.load(sys.stdin)
print(m.get("downtime", "-"), m.get("total-time", "-"))')
	DOWNTIME=$1 TOTAL=$2
	echo "guest up and doing I/O after $((t1 - t0)) s; migration took $((SECONDS - t1)) s"
	echo "$out" | python3 -c 'import json,sys; m=json.load(sys.stdin)
print("status", m.get("status"), "total", m.get("total-time"), "ms, downtime", m.get("downtime"),
      "ms, setup", m.get("setup-time"), "ms, vfio", m.get("vfio"), m.get("error-desc", ""))'
}

# wait_for_line FILE PATTERN SECONDS
wait_for_line() {
	local i
	for i in $(seq $(($3 * 5))); do
		grep -q "$2" "$1" && return 0
		sleep 0.2
	done
	fail "$(basename "$1"): no '$2' after $3 s"
}

check_migrate() {
	local out
	migrate "$VF0" "$VF1" || return
	[ "$ST" = completed ] || fail "migration $ST: $(cat "$D/src.err" "$D/dst.err" | tail -n3)" || return
	echo "source before the switchover, rounds per worker: $(rounds "$D/src.serial")"
	grep -q "STOP_COPY" "$D/src.trace" || fail "the source device never reached STOP_COPY" || return
	out=$($QMP "$D/dst.qmp" query-status) || return
	echo "destination: $out"
	echo "$out" | grep -q '"running"' || fail "destination not running" || return
	# The guest goes on on the destination: every worker verifies all its
	# blocks twice more there.
	local t=$SECONDS
	wait_rounds "$D/dst.serial" 2 300 || return
	echo "destination, rounds per worker: $(rounds "$D/dst.serial") ($((SECONDS - t)) s)"
	guest_failed "$D/src.serial" && return 1
	WITH_VF="$DOWNTIME $TOTAL"
	echo "QEMU: downtime $DOWNTIME ms, total $TOTAL ms (guest with the VF)"
}

check_without_vf() {
	migrate none none || return
	[ "$ST" = completed ] || fail "migration $ST: $(cat "$D/src.err" "$D/dst.err" | tail -n3)" || return
	echo "QEMU: downtime $DOWNTIME ms, total $TOTAL ms (the same guest without the VF)"
	[ -n "${WITH_VF:-}" ] && python3 -c 'import sys
d1, t1, d0, t0 = map(float, sys.argv[1:5])
print(f"with the VF / without: downtime {d1:.0f} / {d0:.0f} ms = {d1 / d0:.2f}x, total {t1:.0f} / {t0:.0f} ms = {t1 / t0:.2f}x")' $WITH_VF "$DOWNTIME" "$TOTAL"
	return 0
}

check_refuses_incompatible() {
	local out before
	migrate "$VF0" "$VF3" || return
	[ "$ST" = failed ] || fail "migration to a smaller VF: $ST, expected failed" || return
	suite_log | grep "$VF3: migration stream rejected" | sed 's/^\[[^]]*\] //'
	suite_log | grep -q "$VF3: migration stream rejected: incompatible source: fewer queue resources" ||
		fail "no dev_err naming the incompatibility" || return
	# Refused before the source stopped: its device never left the running
	# states, the guest still runs and its I/O goes on.
	grep "vfio_migration_set_state" "$D/src.trace" | sed 's/^[0-9@.]*:* *//' | head -n 4
	! grep -q "STOP_COPY" "$D/src.trace" ||
		fail "the source device reached STOP_COPY before the refusal" || return
	out=$($QMP "$D/src.qmp" query-status) || return
	echo "source after the failure: $out"
	echo "$out" | grep -q '"running"' || fail "source not running after the refusal" || return
	before=$(grep -c "l2: worker" "$D/src.serial")
	local i
	for i in $(seq 600); do
		[ "$(grep -c "l2: worker" "$D/src.serial")" -ge $((before + 8)) ] && break
		sleep 0.2
	done
	[ "$(grep -c "l2: worker" "$D/src.serial")" -ge $((before + 8)) ] ||
		fail "the source guest's I/O did not go on after the refusal" || return
	guest_failed "$D/src.serial" && return 1
	echo "source guest after the failure: rounds per worker $(rounds "$D/src.serial")"
	stop_all
	"$NVME_LM" selftest io --vf "$CDEV0" >"$D/io0" || fail "source VF: $(grep '^not ok' "$D/io0")" || return
	echo "source VF: I/O verified"
}

check_vfs_work() {
	stop_all
	"$NVME_LM" selftest io --vf "$CDEV1" >"$D/io1" || fail "destination VF: $(grep '^not ok' "$D/io1")" || return
	"$NVME_LM" selftest io --vf "$CDEV0" >"$D/io0" || fail "source VF: $(grep '^not ok' "$D/io0")" || return
	echo "both VFs: I/O verified after QEMU let them go"
}

check_log() {
	suite_log | grep -E "nvme-vfio-pci" | sed 's/^\[[^]]*\] //' | grep -v resetting | head -n 8
	kernel_log_clean "failed"
}

ktap_begin qemu_migration_guest 5
errf=$(mktemp)
if ! setup >/dev/null 2>"$errf"; then
	for t in qemu_migrates_running_guest vfs_work_after guest_without_vf refuses_incompatible \
		log_clean; do
		ktap_not_ok "$t" "setup: $(tail -n1 "$errf")"
	done
	exit 1
fi
ktap_check qemu_migrates_running_guest check_migrate
ktap_check vfs_work_after check_vfs_work
ktap_check guest_without_vf check_without_vf
ktap_check refuses_incompatible check_refuses_incompatible
ktap_check log_clean check_log
stop_all
for i in 0 1; do bind_driver "$(vf_bdf "$PF" $i)" ""; done
restore_vf3 >/dev/null || echo "qemu-migrate: could not restore VF3's resources" >&2
ktap_end
