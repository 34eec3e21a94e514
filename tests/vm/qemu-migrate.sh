#!/bin/bash
# Live migration driven by stock QEMU (KTAP): two QEMU instances inside the
# test VM, each with one NVMe VF bound to nvme_vfio_pci passed through with
# vfio-pci (iommufd backend); QEMU migrates the device with its own VFIO
# migration code (PRE_COPY with switchover-ack, STOP_COPY, RESUMING), the
# destination starts, and both VFs work afterwards. Then a destination VF
# with fewer queue resources refuses the source during PRE_COPY: QEMU's
# migration fails before the source stops, and the source VF works.
. "$(dirname "$0")/lib/ktap.sh"
. "$(dirname "$0")/lib/sriov.sh"
. "$(dirname "$0")/lib/kernel-log.sh"
NVME_LM=${NVME_LM:-$NVME_VFIO_REPO/tools/nvme-lm/target/release/nvme-lm}
STOCK_QEMU=${STOCK_QEMU:-/usr/bin/qemu-system-x86_64}
QMP="python3 $(dirname "$0")/lib/qmp.py"
D=$(mktemp -d)

setup() {
	[ -x "$STOCK_QEMU" ] || fail "no $STOCK_QEMU" || return
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

# start NAME VF [QEMU ARGS...]: a paused machine with the VF passed through.
start() {
	local name=$1 vf=$2
	shift 2
	"$STOCK_QEMU" -M q35 -accel tcg -m 64 -nodefaults -display none -S \
		-L /usr/share/qemu -L /usr/share/seabios \
		-object iommufd,id=iommufd0 \
		-device "vfio-pci,sysfsdev=/sys/bus/pci/devices/$vf,iommufd=iommufd0,enable-migration=on,id=vf" \
		-qmp "unix:$D/$name.qmp,server=on,wait=off" -daemonize -pidfile "$D/$name.pid" \
		"$@" 2>"$D/$name.err" || fail "$name: $(tail -n1 "$D/$name.err")"
}

stop_all() {
	local n
	for n in src dst; do
		[ -S "$D/$n.qmp" ] && $QMP "$D/$n.qmp" quit >/dev/null 2>&1
		[ -f "$D/$n.pid" ] && while kill -0 "$(cat "$D/$n.pid")" 2>/dev/null; do sleep 0.2; done
	done
	return 0
}

# migrate SRC_VF DST_VF: migrates a paused machine with switchover-ack;
# prints QEMU's numbers; sets ST to the final status.
migrate() {
	stop_all
	rm -f "$D"/*.qmp "$D"/*.pid "$D/mig.sock"
	start src "$1" || return
	start dst "$2" -incoming "unix:$D/mig.sock" || return
	# Switchover-ack: the destination acknowledges the PRE_COPY data (our
	# compatibility record) before the source may stop.
	local caps='{"capabilities": [{"capability": "return-path", "state": true},
		{"capability": "switchover-ack", "state": true}]}'
	$QMP "$D/src.qmp" migrate-set-capabilities "$caps" >/dev/null || return
	$QMP "$D/dst.qmp" migrate-set-capabilities "$caps" >/dev/null || return
	$QMP "$D/src.qmp" migrate "{\"uri\": \"unix:$D/mig.sock\"}" >/dev/null || return
	local i out
	for i in $(seq 600); do
		out=$($QMP "$D/src.qmp" query-migrate) || return
		ST=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("status"))')
		case $ST in completed | failed | cancelled) break ;; esac
		sleep 0.2
	done
	echo "$out" | python3 -c 'import json,sys; m=json.load(sys.stdin)
print("status", m.get("status"), "total", m.get("total-time"), "ms, downtime", m.get("downtime"),
      "ms, vfio", m.get("vfio"), m.get("error-desc", ""))'
}

check_migrate() {
	local out
	migrate "$VF0" "$VF1" || return
	[ "$ST" = completed ] || fail "migration $ST: $(cat "$D/src.err" "$D/dst.err" | tail -n3)" || return
	$QMP "$D/dst.qmp" cont >/dev/null || return
	out=$($QMP "$D/dst.qmp" query-status) || return
	echo "destination: $out"
	echo "$out" | grep -q '"running"' || fail "destination not running" || return
}

check_refuses_incompatible() {
	local out
	migrate "$VF0" "$VF3" || return
	[ "$ST" = failed ] || fail "migration to a smaller VF: $ST, expected failed" || return
	suite_log | grep "$VF3: migration stream rejected" | sed 's/^\[[^]]*\] //'
	suite_log | grep -q "$VF3: migration stream rejected: incompatible source: fewer queue resources" ||
		fail "no dev_err naming the incompatibility" || return
	out=$($QMP "$D/src.qmp" query-status) || return
	echo "source after the failure: $out"
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

ktap_begin qemu_migration 4
errf=$(mktemp)
if ! setup >/dev/null 2>"$errf"; then
	for t in qemu_migrates_vf vfs_work_after refuses_incompatible log_clean; do
		ktap_not_ok "$t" "setup: $(tail -n1 "$errf")"
	done
	exit 1
fi
ktap_check qemu_migrates_vf check_migrate
ktap_check vfs_work_after check_vfs_work
ktap_check refuses_incompatible check_refuses_incompatible
ktap_check log_clean check_log
stop_all
for i in 0 1; do bind_driver "$(vf_bdf "$PF" $i)" ""; done
restore_vf3 >/dev/null || echo "qemu-migrate: could not restore VF3's resources" >&2
ktap_end
