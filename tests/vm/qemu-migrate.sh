#!/bin/bash
# Live migration of a running guest driven by stock QEMU (KTAP). Debian's
# QEMU runs an L2 guest inside the test VM (tests/l2/: a minimal kernel and
# an init that loops write/read/verify through Linux's nvme driver, with a
# checksum per block). The guest is restored from the snapshot
# scripts/build-l2.sh took of it booted (tests/l2/machine.sh: booting Linux
# under TCG inside TCG takes about 100 s) and an NVMe VF bound to
# nvme_vfio_pci is hotplugged into it with vfio-pci; its nvme driver probes
# the VF and the I/O starts. QEMU migrates the guest with its own VFIO
# migration code (PRE_COPY with switchover-ack, STOP_COPY, RESUMING) while
# the I/O runs: the controller is live at the switchover (queues, MSI-X,
# commands in flight) and the loop must go on on the destination, every
# block verified, with no I/O error, timeout or reset in the guest's log.
# QEMU's own downtime and total time are recorded, and compared with the
# same guest without the VF.
#
# The VF is passed through as QEMU does by default: the iommufd backend, BARs
# mmapped, no enable-migration option. QEMU enables migration of the VF
# only because the driver offers DMA logging (backed by NVMe 2.2 Track
# Memory Changes on the PF): the test VM's IOMMU has no dirty bits, and
# without a dirty page tracker QEMU 10 would refuse to migrate. Every sync
# of QEMU's dirty log then reads and clears the pages the VF wrote by DMA
# (read data, completion entries); one it missed arrives stale on the
# destination and fails the guest's checksums (before DMA logging this
# suite caught exactly that: a read returning the previous block's data,
# and a lost completion).
#
# Every step also goes to the console (the VM's log) as it happens, so a
# step that never ends is named there.
. "$(dirname "$0")/lib/ktap.sh"
. "$(dirname "$0")/lib/sriov.sh"
. "$(dirname "$0")/lib/kernel-log.sh"
. "$(dirname "$0")/lib/media.sh"
. "$(dirname "$0")/../l2/machine.sh"
NVME_LM=${NVME_LM:-$NVME_VFIO_REPO/tools/nvme-lm/target/release/nvme-lm}
STOCK_QEMU=${STOCK_QEMU:-/usr/bin/qemu-system-x86_64}
QMP="python3 $(dirname "$0")/lib/qmp.py"
D=$(mktemp -d)
# The L2 guest (scripts/build-l2.sh), passed in by tests/vm/run-vm.py.
L2=${L2_DIR:-}
T0=$SECONDS
# The QEMU instances by name, and where the guest runs now.
GUESTS=()
AT=""

step() {
	echo "qemu_migration: +$((SECONDS - T0)) s: $*" >/dev/console 2>/dev/null
	echo "+$((SECONDS - T0)) s: $*"
}

setup() {
	[ -x "$STOCK_QEMU" ] || fail "no $STOCK_QEMU" || return
	[ -r "$L2/bzImage" ] && [ -r "$L2/booted.state" ] ||
		fail "no L2 guest in '$L2' (scripts/build-l2.sh; L2_DIR)" || return
	l2_machine "$L2"
	PF=$(pf_bdf a) && PF_B=$(pf_bdf b) || return 1
	[ "$(cat "/sys/bus/pci/devices/$PF/sriov_numvfs")" -ge 2 ] || sriov_setup 4 a || return 1
	[ "$(cat "/sys/bus/pci/devices/$PF_B/sriov_numvfs")" -ge 1 ] || sriov_setup 1 b || return 1
	PF=$(pf_bdf a) || return 1
	modprobe nvme_vfio_pci || fail "modprobe nvme_vfio_pci failed" || return
	PF_DEV=$(pci_nvme_dev "$PF") || return 1
	# VF3: one I/O queue pair fewer than the others.
	VF3=$(vf_bdf "$PF" 3) || return 1
	bind_driver "$VF3" "" || return 1
	VQ_PER_VF=$((VQ_PER_VF - 1)) online_vf "$PF_DEV" "$(vf_scid "$PF_DEV" 4)" || return 1
	bind_driver "$VF3" nvme-vfio-pci || return 1
	PF=$PF_B bind_vfs_vfio nvme-vfio-pci 1 || return 1
	VFB=$VF0
	bind_vfs_vfio nvme-vfio-pci 2 || return 1
	kernel_log_mark
}

restore_vf3() {
	bind_driver "$VF3" "" && online_vf "$PF_DEV" "$(vf_scid "$PF_DEV" 4)"
}

# vf_dev VF: the vfio-pci device of the guest for VF (a PCI address), on
# the guest's hotplug root port, on iommufd; QEMU's defaults otherwise.
vf_dev() {
	echo "vfio-pci,sysfsdev=/sys/bus/pci/devices/$1,iommufd=iommufd0,rombar=0,bus=rp0,id=vf"
}

# launch NAME [QEMU ARGS...]: a QEMU of the L2 machine, paused for an
# incoming migration (-incoming in ARGS). Its serial console goes to
# $D/NAME.serial, its VFIO migration state changes to $D/NAME.trace.
launch() {
	local name=$1
	shift
	: >"$D/$name.serial"
	GUESTS+=("$name")
	timeout 120 "$STOCK_QEMU" "${L2_ARGS[@]}" -object iommufd,id=iommufd0 \
		-serial "file:$D/$name.serial" \
		-trace "enable=vfio_migration_set_state" -trace "enable=vfio_device_dirty_tracking_start" \
		-trace "enable=vfio_get_dirty_bitmap" -trace "file=$D/$name.trace" \
		-qmp "unix:$D/$name.qmp,server=on,wait=off" -daemonize -pidfile "$D/$name.pid" \
		"$@" 2>"$D/$name.err" || fail "$name: QEMU did not start: $(tail -n1 "$D/$name.err")"
}

# restore NAME [VF]: the booted guest from its snapshot, running, with VF
# hotplugged (none: without a VF, the guest waits for one and idles).
restore() {
	local name=$1 vf=${2:-}
	step "$name: restoring the booted guest"
	launch "$name" -incoming "file:$L2/booted.state" || return
	wait_until 120 "$name: snapshot loaded" loaded "$name" || return
	$QMP "$D/$name.qmp" cont >/dev/null || fail "$name: cont failed" || return
	AT=$name
	[ -n "$vf" ] || return 0
	step "$name: hotplugging $vf"
	$QMP "$D/$name.qmp" device_add "$(vf_json "$vf")" >/dev/null ||
		fail "$name: device_add of $vf failed" || return
}

# loaded NAME: guest NAME's incoming migration (its snapshot) is in.
loaded() {
	$QMP "$D/$1.qmp" query-status | grep -q '"paused"\|"postmigrate"'
}

vf_json() {
	python3 -c 'import json,sys
print(json.dumps({"driver": "vfio-pci", "sysfsdev": "/sys/bus/pci/devices/" + sys.argv[1],
                  "iommufd": "iommufd0", "rombar": 0, "bus": "rp0", "id": "vf"}))' "$1"
}

# quit NAME: quits that QEMU (if it still runs) and waits for it; one that
# does not go in 30 s is killed, and that is a failure.
quit() {
	local pid i
	[ -S "$D/$1.qmp" ] && $QMP "$D/$1.qmp" quit >/dev/null 2>&1
	[ -f "$D/$1.pid" ] || return 0
	pid=$(cat "$D/$1.pid")
	rm -f "$D/$1.qmp" "$D/$1.pid"
	for i in $(seq 150); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.2
	done
	kill -9 "$pid"
	fail "$1: QEMU did not quit in 30 s"
}

quit_all() {
	local n rc=0
	for n in "${GUESTS[@]}"; do quit "$n" || rc=1; done
	rm -f "$D/mig.sock"
	return $rc
}

# rounds FILE: per worker of the L2 guest, the rounds it verified in FILE.
rounds() {
	awk '/l2: worker [0-9]+ round [0-9]+:/ { n[$3]++ }
		END { for (w in n) printf "%s:%d ", w, n[w] }' "$1"
}

# wait_until SECONDS WHAT CMD...: until CMD succeeds; fails naming WHAT
# after SECONDS (wall time).
wait_until() {
	local secs=$1 what=$2 end=$((SECONDS + $1))
	shift 2
	until "$@"; do
		[ $SECONDS -lt "$end" ] || fail "no $what after $secs s" || return
		sleep 0.5
	done
}

# count_rounds FILE N [FROM]: how many of the workers verified at least N
# rounds in FILE after its line FROM (default 0).
count_rounds() {
	tail -n +"$((${3:-0} + 1))" "$1" | awk -v n="$2" '
		/l2: worker [0-9]+ round [0-9]+:/ { c[$3]++ }
		END { k = 0; for (w in c) if (c[w] >= n) k++; print k }'
}

# wait_more_rounds NAME N SECONDS: every worker of guest NAME verifies N
# more rounds than it had now; fails on a guest failure or after SECONDS
# (wall time), with what the guest printed last.
wait_more_rounds() {
	local f="$D/$1.serial" from end=$((SECONDS + $3)) next=$((SECONDS + 30))
	from=$(wc -l <"$f")
	while [ "$(count_rounds "$f" "$2" "$from")" != "$L2_WORKERS" ]; do
		guest_failed "$f" && return 1
		if [ $SECONDS -ge "$end" ]; then
			tail -n 5 "$f"
			fail "$1: every worker did not verify $2 more rounds in $3 s: $(rounds "$f")"
			return
		fi
		[ $SECONDS -lt "$next" ] || { step "$1: rounds per worker $(rounds "$f")"; next=$((SECONDS + 30)); }
		sleep 0.5
	done
}

# guest_failed FILE: succeeds (and says why on stderr) if the guest
# reported a failure, or its kernel an I/O error, a timeout, a controller
# reset, or a completion it never asked for (a controller replaying
# commands: "invalid id", "genctr mismatch"); fails if FILE shows none.
guest_failed() {
	local bad
	bad=$(grep -aE "l2: FAIL|nvme.*(timeout|reset|abort|I/O error|failed|invalid id|mismatch)|I/O error|Oops|BUG|panic" "$1" |
		head -n 3)
	[ -n "$bad" ] || return 1
	echo "$(basename "$1"): $bad" >&2
}

# migrate TO [VF]: migrates the running guest from where it is ($AT) to a
# new QEMU TO with VF (none: without one), with switchover-ack; prints
# QEMU's numbers (query-migrate); sets ST (status), DOWNTIME and TOTAL (ms)
# and MARK (the source's trace lines before the migration).
migrate() {
	local to=$1 vf=${2:-none} from=$AT i out
	local dev=()
	[ "$vf" = none ] || dev=(-device "$(vf_dev "$vf")")
	rm -f "$D/mig.sock"
	step "$to: destination with $vf"
	# MIGRATE_PAUSED=1: the destination stays paused after the migration
	# (-S), its guest started by a later cont.
	launch "$to" "${dev[@]}" ${MIGRATE_PAUSED:+-S} -incoming "unix:$D/mig.sock" || return
	MARK=$(wc -l <"$D/$from.trace")
	# Switchover-ack: the destination acknowledges the PRE_COPY data (our
	# compatibility record) before the source may stop.
	local caps='{"capabilities": [{"capability": "return-path", "state": true},
		{"capability": "switchover-ack", "state": true}]}'
	$QMP "$D/$to.qmp" migrate-set-capabilities "$caps" >/dev/null || return
	step "$from -> $to: migrating"
	# One QMP session (starting Python costs seconds here): capabilities,
	# migrate, then poll until it ends.
	out=$($QMP "$D/$from.qmp" migrate-set-capabilities "$caps" \
		migrate "{\"uri\": \"unix:$D/mig.sock\"}" wait-migration '{"seconds": 180}') || return
	# shellcheck disable=SC2046
	set -- $(echo "$out" | python3 -c 'import json,sys; m=json.load(sys.stdin)
print(m.get("status"), m.get("downtime", "-"), m.get("total-time", "-"))
print("status", m.get("status"), "total", m.get("total-time"), "ms, downtime", m.get("downtime"),
      "ms, setup", m.get("setup-time"), "ms, ram transferred", m.get("ram", {}).get("transferred"),
      "bytes, vfio", m.get("vfio"), m.get("error-desc", ""),
      file=sys.stderr)' 2>"$D/mig.summary")
	ST=$1 DOWNTIME=$2 TOTAL=$3
	case $ST in
	completed | failed | cancelled) ;;
	*) fail "$from -> $to: still $ST after 180 s" || return ;;
	esac
	step "$from -> $to: $ST"
	cat "$D/mig.summary"
	[ "$ST" = completed ] && AT=$to
	return 0
}

# dirty_syncs NAME: how QEMU's syncs of the VF's DMA log went since MARK.
dirty_syncs() {
	tail -n +"$((MARK + 1))" "$D/$1.trace" | python3 -c 'import re,sys
n = nz = pages = 0
for l in sys.stdin:
    if "vfio_device_dirty_tracking_start" in l:
        print("device dirty log started:", l.split("vfio_device_dirty_tracking_start", 1)[1].strip())
    m = re.search(r"vfio_get_dirty_bitmap (.*)dirty_pages=(\d+)", l)
    if m:
        n += 1; pages += int(m.group(2)); nz += int(m.group(2)) > 0
print(f"device dirty log: {n} reports ({nz} with dirty pages), {pages} dirty pages")'
}

# source_states NAME: the VFIO migration states the device of guest NAME
# went through since MARK.
source_states() {
	tail -n +"$((MARK + 1))" "$D/$1.trace" | grep -o "vfio_migration_set_state.*" | sed 's/ *$//'
}

check_migrated() { # FROM TO ROUNDS
	local out
	[ "$ST" = completed ] ||
		fail "migration $ST: $(cat "$D/$1.err" "$D/$2.err" | tail -n3)" || return
	source_states "$1" | grep -q "STOP_COPY" ||
		fail "the source device never reached STOP_COPY" || return
	# QEMU tracked the VF's DMA with the device's own log, and synced it.
	dirty_syncs "$1"
	tail -n +"$((MARK + 1))" "$D/$1.trace" | grep -q vfio_device_dirty_tracking_start ||
		fail "QEMU did not start the device's DMA logging" || return
	out=$($QMP "$D/$2.qmp" query-status) || return
	echo "destination: $out"
	echo "$out" | grep -q '"running"' || fail "destination not running" || return
	# The guest goes on on the destination: every worker verifies all its
	# blocks ROUNDS more times there (2: one round wholly on it).
	wait_more_rounds "$2" "$3" 180 || return
	echo "on the destination, rounds per worker: $(rounds "$D/$2.serial")"
	grep -a "nvme" "$D/$2.serial" | head -n 5 | sed 's/^/destination kernel: /'
	guest_failed "$D/$1.serial" && return 1
	quit "$1"
}

check_refused() { # FROM TO EXPECTED-REASON [ROUNDS]
	local out log rounds=${4:-1}
	[ "$ST" = failed ] || fail "migration to $2: $ST, expected failed" || return
	log=$(suite_log)
	echo "$log" | grep "migration stream rejected" | sed 's/^\[[^]]*\] //' | tail -n 1
	echo "$log" | grep -q "migration stream rejected: incompatible source: $3" ||
		fail "no dev_err naming the incompatibility ($3)" || return
	# Refused before the source stopped: its device never left the running
	# states, the guest still runs and its I/O goes on (every worker
	# verifies all its blocks ROUNDS more times; 0 when the next refusal's
	# check will).
	source_states "$1"
	! source_states "$1" | grep -q "STOP_COPY" ||
		fail "the source device reached STOP_COPY before the refusal" || return
	out=$($QMP "$D/$1.qmp" query-status) || return
	echo "source after the failure: $out"
	echo "$out" | grep -q '"running"' || fail "source not running after the refusal" || return
	if [ "$rounds" -gt 0 ]; then
		wait_more_rounds "$1" "$rounds" 180 || return
	fi
	guest_failed "$D/$1.serial" && return 1
	echo "source guest after the failure: rounds per worker $(rounds "$D/$1.serial")"
	quit "$2"
}

check_guest_io() {
	restore g1 "$VF0" || return
	step "g1: waiting for the guest's I/O"
	wait_more_rounds g1 1 240 || return
	step "g1: every worker verified a round"
	grep "l2: .*present" "$D/g1.serial"
	grep -q "l2: .*present, $L2_WORKERS workers" "$D/g1.serial" ||
		fail "the guest's init does not run $L2_WORKERS workers"
}

check_migrate() {
	migrate g2 "$VF1" || return
	check_migrated g1 g2 2 || return
	WITH_VF="$DOWNTIME $TOTAL"
	echo "QEMU: downtime $DOWNTIME ms, total $TOTAL ms (guest with the VF)"
}

check_refuses_smaller() {
	local from=$AT
	migrate g3 "$VF3" || return
	check_refused "$from" g3 "fewer queue resources" 0
}

check_refuses_other_subsystem() {
	local from=$AT
	migrate g4 "$VFB" || return
	check_refused "$from" g4 "different NVM subsystem"
}

check_migrates_again() {
	migrate g5 "$VF0" || return
	check_migrated g2 g5 1
}

check_without_vf() {
	quit_all || return
	# Restored where its init waits for a VF (it said so before the
	# snapshot), idle.
	restore n1 || return
	migrate n2 || return
	[ "$ST" = completed ] || fail "migration $ST: $(cat "$D/n1.err" "$D/n2.err" | tail -n3)" || return
	echo "QEMU: downtime $DOWNTIME ms, total $TOTAL ms (the same guest without the VF)"
	[ -n "${WITH_VF:-}" ] || return 0
	# shellcheck disable=SC2086
	python3 -c 'import sys
d1, t1, d0, t0 = map(float, sys.argv[1:5])
print(f"with the VF / without: downtime {d1:.0f} / {d0:.0f} ms = {d1 / d0:.2f}x, total {t1:.0f} / {t0:.0f} ms = {t1 / t0:.2f}x")' $WITH_VF "$DOWNTIME" "$TOTAL"
}

# set_ns DEV CTRL "NSIDS": NSIDs 1 and 2 attached to controller CTRL of PF
# device DEV exactly as listed (the others of the two detached).
set_ns() {
	local pfd=$1 ctrl=$2 want=" $3 " got nsid
	got=" $(ns_of_ctrl "$pfd" "$ctrl")"
	for nsid in 1 2; do
		case "$want|$got" in
		*" $nsid "*"|"*" $nsid "*) ;;
		*" $nsid "*"|"*) attach_ns "$pfd" "$nsid" "$ctrl" || return ;;
		*"|"*" $nsid "*) detach_ns "$pfd" "$nsid" "$ctrl" || return ;;
		esac
	done
}

# Local storage: VF0 of host a (VFN 1) has only its private namespace,
# NSID 2 (the PF has it too, to read it), as has VF0 of host b; both opted
# in to media migration. The running guest moves to host b with the
# namespace's data in the VFIO stream. The destination stays paused on
# arrival: the two hosts' copies of NSID 2 are compared through the PFs
# byte for byte at the switchover (the guest writes on after it); then the
# guest runs on, on host b.
check_local_storage() {
	local rc=0 a b pcid_a pcid_b scid_a scid_b orig
	a=$PF_DEV
	b=$(pci_nvme_dev "$PF_B") || return
	pcid_a=$(pf_cntlid "$a") && pcid_b=$(pf_cntlid "$b") || return
	scid_a=$(vf_scid "$a" 1) && scid_b=$(vf_scid "$b" 1) || return
	quit_all || return
	orig=("$(ns_of_ctrl "$a" "$scid_a")" "$(ns_of_ctrl "$a" "$pcid_a")"
		"$(ns_of_ctrl "$b" "$scid_b")" "$(ns_of_ctrl "$b" "$pcid_b")")
	echo "before: host a VF0 NSIDs ${orig[0]}, PF ${orig[1]}; host b VF0 ${orig[2]}, PF ${orig[3]}"
	local_storage "$a" "$b" "$pcid_a" "$pcid_b" "$scid_a" "$scid_b" || rc=1
	quit_all || rc=1
	media "$VF0" 0 || rc=1
	media "$VFB" 0 || rc=1
	{ set_ns "$a" "$scid_a" "${orig[0]}" && set_ns "$a" "$pcid_a" "${orig[1]}" &&
		set_ns "$b" "$scid_b" "${orig[2]}" && set_ns "$b" "$pcid_b" "${orig[3]}"; } ||
		fail "could not restore the namespace attachments" || rc=1
	return $rc
}

local_storage() { # DEV-A DEV-B PCID-A PCID-B SCID-A SCID-B
	local a=$1 b=$2 got
	set_ns "$a" "$5" "2" && set_ns "$a" "$3" "1 2" || return
	set_ns "$b" "$6" "2" && set_ns "$b" "$4" "1 2" || return
	got="$(ns_of_ctrl "$a" "$5")|$(ns_of_ctrl "$b" "$6")"
	[ "$got" = "2 |2 " ] || fail "VF0 NSIDs host a|b: '$got', expected only 2 on both" || return
	echo "host a VF0 ($VF0) and host b VF0 ($VFB): only NSID 2"
	media "$VF0" 1 && media "$VFB" 1 || return
	restore m1 "$VF0" || return
	step "m1: waiting for the guest's I/O on its private namespace"
	wait_more_rounds m1 1 240 || return
	grep -a "l2: .*present" "$D/m1.serial"
	MIGRATE_PAUSED=1 migrate m2 "$VFB" || return
	[ "$ST" = completed ] ||
		fail "migration $ST: $(cat "$D/m1.err" "$D/m2.err" | tail -n3)" || return
	echo "QEMU: downtime $DOWNTIME ms, total $TOTAL ms (local storage, to host b)"
	wait_until 60 "m2: migration loaded" loaded m2 || return
	quit m1 || return
	step "comparing NSID 2 of host a and host b"
	same_ns "$a" "$b" 2 || return
	$QMP "$D/m2.qmp" cont >/dev/null || fail "m2: cont failed" || return
	check_migrated m1 m2 2
}

check_vfs_work() {
	quit_all || return
	"$NVME_LM" selftest io --vf "$CDEV0" >"$D/io0" || fail "VF0: $(grep '^not ok' "$D/io0")" || return
	"$NVME_LM" selftest io --vf "$CDEV1" >"$D/io1" || fail "VF1: $(grep '^not ok' "$D/io1")" || return
	echo "VF0 and VF1: I/O verified after QEMU let them go"
}

check_log() {
	suite_log | grep -E "nvme-vfio-pci" | sed 's/^\[[^]]*\] //' | grep -v resetting | head -n 8
	kernel_log_clean "failed"
}

DOC=qemu_migration
TESTS=(guest_io_on_vf qemu_migrates_running_guest refuses_smaller_destination
	refuses_other_subsystem migrates_again_after_refusal guest_without_vf
	migrates_local_storage_to_other_host vfs_work_after log_clean)
declare -A CHECKS=([guest_io_on_vf]=check_guest_io [qemu_migrates_running_guest]=check_migrate
	[refuses_smaller_destination]=check_refuses_smaller
	[refuses_other_subsystem]=check_refuses_other_subsystem
	[migrates_again_after_refusal]=check_migrates_again [guest_without_vf]=check_without_vf
	[migrates_local_storage_to_other_host]=check_local_storage [vfs_work_after]=check_vfs_work [log_clean]=check_log)
ktap_begin "$DOC" ${#TESTS[@]}
errf=$(mktemp)
if ! setup >/dev/null 2>"$errf"; then
	for t in "${TESTS[@]}"; do ktap_not_ok "$t" "setup: $(tail -n1 "$errf")"; done
	exit 1
fi
for t in "${TESTS[@]}"; do ktap_check "$t" "${CHECKS[$t]}"; done
quit_all
for i in 0 1; do bind_driver "$(vf_bdf "$PF" $i)" ""; done
bind_driver "$VFB" ""
restore_vf3 >/dev/null || echo "qemu-migrate: could not restore VF3's resources" >&2
ktap_end
