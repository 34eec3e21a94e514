#!/bin/bash
# The PF-side live migration service of nvme-pci (drivers/nvme/host/lm.c),
# through its test driver nvme_lm_selftest bound to two VFs (KTAP): handles
# are per VF, suspend/resume semantics and errnos, a state round trip
# between the VFs (whole and in pieces), the kernel-owned CDQ (markers,
# wrap-around, full event, tail trigger, suspend marker), and the PF going
# away while handles are held: clean teardown, no warning, no leak.
#
#   pf-service.sh ops       the operations above, from the shell
#   pf-service.sh io        the client's writes in the kernel-owned CDQ and a
#                           migration through the service (Rust, via VFIO)
#   pf-service.sh teardown  the PF unbound while handles are held
. "$(dirname "$0")/lib/ktap.sh"
. "$(dirname "$0")/lib/sriov.sh"
. "$(dirname "$0")/lib/kernel-log.sh"

DBG=/sys/kernel/debug/nvme_lm_selftest

# lmcmd VF CMD: run CMD; print the errno name ("OK" on success). A command
# still blocked after 20 s prints ETIMEDOUT and exits 124 (its kernel stack
# on the console).
# An operation that takes over 20 s has its kernel stack and the kernel
# log printed (to the console log), then fails.
lmcmd() {
	python3 - "$DBG/$1/cmd" "$2" <<'PY'
import errno, os, sys, threading, subprocess
def stuck():
    me = os.getpid()
    try:
        sys.stderr = open("/dev/ttyS0", "w")  # the console log: the caller may never see stderr
    except OSError:
        pass
    sys.stderr.write(f"lmcmd: '{sys.argv[2]}' on {sys.argv[1]} blocked for 20 s; kernel stack:\n")
    try:
        sys.stderr.write(open(f"/proc/{me}/stack").read())
    except OSError as e:
        sys.stderr.write(f"(no stack: {e})\n")
    sys.stderr.write(subprocess.run(["dmesg"], capture_output=True, text=True).stdout[-3000:])
    sys.stderr.flush()
    print("ETIMEDOUT", flush=True)
    os._exit(124)
t = threading.Timer(20, stuck)
t.daemon = True
t.start()
fd = os.open(sys.argv[1], os.O_WRONLY)
try:
    os.write(fd, sys.argv[2].encode())
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))
PY
}

# Start a case from running controllers without a CDQ, whatever an earlier
# case left behind.
fresh() {
	local v
	for v in "$A" "$B"; do
		# Either may fail (nothing to resume or destroy); none may hang.
		lmcmd "$v" resume >/dev/null || fail "resume on $v timed out" || return
		lmcmd "$v" cdq-destroy >/dev/null || fail "cdq-destroy on $v timed out" || return
	done
}

expect() { # VF CMD ERRNO
	local got; got=$(lmcmd "$1" "$2")
	[ "$got" = "$3" ] || fail "'$2' on $1: $got, expected $3" || return
}

# cdq_read VF [MAX]: consume CDQ entries (at most MAX); print "ESA LBACI
# PHASE" per entry.
cdq_read() {
	python3 - "$DBG/$1/cdq" "${2:-2048}" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
data = os.read(fd, 32 * int(sys.argv[2]))
for i in range(0, len(data), 32):
    a = data[i + 31]
    print((a >> 1) & 7, a >> 6, a & 1)
PY
}

setup() {
	PF=$(pf_bdf) || return 1
	PF_DEV=$(pci_nvme_dev "$PF") || return 1
	[ "$(cat "/sys/bus/pci/devices/$PF/sriov_numvfs")" -ge 4 ] || sriov_setup 4 || return 1
	modprobe nvme_lm_selftest || fail "modprobe nvme_lm_selftest failed" || return
	A=$(vf_bdf "$PF" 2) && B=$(vf_bdf "$PF" 3) || return 1
	# As a VMM would before migrating into them: unbound, function reset.
	if [ "$(bound_driver "$A")" != nvme_lm_selftest ] || [ "$(bound_driver "$B")" != nvme_lm_selftest ]; then
		bind_driver "$A" "" && bind_driver "$B" "" || return 1
		echo 1 >"/sys/bus/pci/devices/$A/reset" && echo 1 >"/sys/bus/pci/devices/$B/reset" ||
			fail "VF function reset failed" || return
		bind_driver "$A" nvme_lm_selftest || return 1
		bind_driver "$B" nvme_lm_selftest || return 1
	fi
	SCID_A=$(vf_scid "$PF_DEV" 3) && SCID_B=$(vf_scid "$PF_DEV" 4) || return 1
	kernel_log_mark
}

check_handles() {
	local a b
	a=$(cat "$DBG/$A/cntlid") && b=$(cat "$DBG/$B/cntlid") || return 1
	echo "$A: CNTLID $a, $B: CNTLID $b"
	[ "$a" = "$SCID_A" ] && [ "$b" = "$SCID_B" ] ||
		fail "handles name CNTLIDs $a/$b, the VFs are $SCID_A/$SCID_B" || return
	[ "$a" != "$b" ] || fail "two VFs share a controller" || return
}

check_suspend_resume() {
	fresh || return
	expect "$A" resume EINVAL || return	# 13Ah: not suspended
	expect "$A" notify OK || return
	expect "$A" suspend OK || return
	# NVMe 2.1 p. 376: suspending a suspended controller succeeds.
	expect "$A" suspend OK || return
	expect "$B" resume EINVAL || return	# B is untouched by A's suspend
	expect "$A" resume OK || return
	expect "$A" resume EINVAL
}

check_state_round_trip() {
	local sa sb
	fresh || return
	expect "$A" suspend OK || return
	expect "$A" get-state OK || return
	sa=$(od -An -tx1 -v "$DBG/$A/state" | tr -d ' \n')
	echo "state of $A: $(( ${#sa} / 2 )) bytes"
	[ $(( ${#sa} / 2 )) -ge 184 ] || fail "state of $((${#sa} / 2)) bytes is too short" || return
	expect "$B" set-state EINVAL || return	# nothing loaded yet: no state buffer
	expect "$B" suspend OK || return
	for pieces in 1 3; do
		cat "$DBG/$A/state" >"$DBG/$B/state" || return 1
		expect "$B" "set-state $pieces" OK || return
		expect "$B" get-state OK || return
		sb=$(od -An -tx1 -v "$DBG/$B/state" | tr -d ' \n')
		[ "$sa" = "$sb" ] || fail "state read back from $B ($pieces pieces) differs from $A's" || return
	done
	# A corrupt state is refused (first header byte: version 0 only).
	printf '\x01' | dd of="$DBG/$B/state" bs=1 count=1 conv=notrunc 2>/dev/null
	expect "$B" set-state EINVAL || return
	expect "$A" resume OK || return
	expect "$B" resume OK
}

check_cdq_markers() {
	local e
	fresh || return
	expect "$A" "cdq-create 1" EINVAL || return
	expect "$A" "cdq-create 8" OK || return
	expect "$A" "cdq-create 8" EBUSY || return
	# Start/stop markers through an 8-entry ring, consumed as they come:
	# the phase tag flips at each wrap.
	local phases="" i
	for i in 1 2 3 4 5 6; do
		expect "$A" cdq-start OK || return
		expect "$A" cdq-stop OK || return
		e=$(cdq_read "$A" | tr '\n' ' ')
		case "$e" in
		"1 2 "?" 2 2 "?" ") phases+="${e:4:1}${e:10:1}" ;;
		*) fail "round $i: entries '$e', expected a start and a stop marker" || return ;;
		esac
	done
	echo "phases over 12 markers: $phases"
	[ "$phases" = 111111110000 ] || fail "phase tags $phases, expected a flip after 8 entries" || return
}

check_cdq_full_and_trigger() {
	local ev e c
	fresh || return
	expect "$A" "cdq-create 8" OK || return
	expect "$A" "cdq-arm 3" OK || return
	expect "$A" cdq-start OK || return
	expect "$A" cdq-stop OK || return
	expect "$A" cdq-start OK || return
	sleep 0.2
	ev=$(cat "$DBG/$A/events")
	case "$ev" in "tail 1 full 0"*) ;; *) fail "after 3 entries: events '$ev', expected one tail trigger" || return ;; esac
	expect "$A" cdq-stop OK || return
	cdq_read "$A" >/dev/null
	# From an empty 8-entry ring (7 free): five markers leave 2 free with
	# logging on; the suspend marker takes one; the resume marker finds the
	# last slot and becomes the queue-full marker.
	for c in cdq-start cdq-stop cdq-start cdq-stop cdq-start suspend resume; do
		expect "$A" "$c" OK || return
	done
	sleep 0.2
	ev=$(cat "$DBG/$A/events")
	case "$ev" in *"full 1"*) ;; *) fail "events '$ev', expected the full event" || return ;; esac
	expect "$A" cdq-start ENOSPC || return	# 13Bh until consumed
	e=$(cdq_read "$A" | tail -n1)
	[ "${e% ?}" = "7 2" ] || fail "last entry '$e', expected ESA 7" || return
	ev=$(cat "$DBG/$A/events")
	case "$ev" in *"overflow 1") ;; *) fail "overflow not reported: '$ev'" || return ;; esac
	expect "$A" cdq-start OK || return
	expect "$A" suspend OK || return
	expect "$A" cdq-start EALREADY || return	# 139h: suspended
	e=$(cdq_read "$A" | cut -d' ' -f1,2 | tr '\n' ' ')
	[ "$e" = "1 2 3 2 " ] ||
		fail "entries (ESA LBACI) '$e', expected start then suspended markers" || return
	expect "$A" resume OK || return
	expect "$A" cdq-stop OK || return
	expect "$A" cdq-destroy OK
}

# events VF PATTERN WHAT: the test driver's event counts match PATTERN.
events() {
	local ev
	sleep 0.2
	ev=$(cat "$DBG/$1/events")
	# shellcheck disable=SC2254 # PATTERN is a glob
	case "$ev" in $2) ;; *) fail "$3: events '$ev', expected '$2'" || return ;; esac
}

# An armed trigger survives the head updates of reads: the service sends
# ETPT 1 and the same TPT again (ETPT 0 disarms, NVMe 2.1 Figure 426).
check_cdq_trigger_survives_reads() {
	local n
	fresh || return
	expect "$A" "cdq-create 16" OK || return
	expect "$A" cdq-start OK || return
	cdq_read "$A" >/dev/null
	expect "$A" "cdq-arm 4" OK || return
	expect "$A" cdq-stop OK || return
	expect "$A" cdq-start OK || return
	n=$(cdq_read "$A" | wc -l)
	[ "$n" = 2 ] || fail "read $n entries, expected 2" || return
	expect "$A" cdq-stop OK || return
	events "$A" "tail 0 *" "3 of 4 entries" || return
	expect "$A" cdq-start OK || return
	events "$A" "tail 1 *" "4 entries, 2 of them read while armed" || return
	expect "$A" cdq-stop OK || return
	cdq_read "$A" >/dev/null
	events "$A" "tail 1 *" "one event per arming" || return
	expect "$A" cdq-destroy OK
}

# Entries waiting unread do not count: the trigger is set from the tail.
check_cdq_arm_counts_from_tail() {
	fresh || return
	expect "$A" "cdq-create 16" OK || return
	expect "$A" "cdq-arm 0" EINVAL || return
	expect "$A" "cdq-arm 16" EINVAL || return
	expect "$A" cdq-start OK || return
	expect "$A" cdq-stop OK || return
	expect "$A" cdq-start OK || return
	expect "$A" "cdq-arm 2" OK || return	# 3 entries wait unread
	expect "$A" cdq-stop OK || return
	events "$A" "tail 0 *" "1 new entry of 2" || return
	expect "$A" cdq-start OK || return
	events "$A" "tail 1 *" "2 new entries (3 waiting before)" || return
	# 5 waiting, 10 free: asking for more arms at the last reachable slot,
	# where the queue-full entry lands; its event ends the arming. Logging
	# stays on: suspend and resume markers fill the ring.
	expect "$A" "cdq-arm 12" OK || return
	local c
	for c in suspend resume suspend resume suspend resume suspend resume suspend; do
		expect "$A" "$c" OK || return
	done
	events "$A" "tail 1 full 0 *" "14 of 15 slots used" || return
	expect "$A" resume OK || return	# the last free slot: ESA 7
	events "$A" "tail 1 full 1 *" "the ring full" || return
	expect "$A" "cdq-arm 1" ENOSPC || return
	[ "$(cdq_read "$A" | tail -n1 | cut -d' ' -f1)" = 7 ] || fail "no ESA 7 entry last" || return
	expect "$A" cdq-start OK || return
	expect "$A" cdq-stop OK || return
	cdq_read "$A" >/dev/null
	events "$A" "tail 1 full 1 *" "no stale trigger after the full ring" || return
	expect "$A" cdq-destroy OK
}

# Fill an 8-entry ring from empty: five markers, the suspend marker, and the
# resume marker that finds the last slot and becomes the queue-full entry.
cdq_fill8() {
	local c
	for c in cdq-start cdq-stop cdq-start cdq-stop cdq-start suspend resume; do
		expect "$1" "$c" OK || return
	done
}

# A full ring is overflow when read, even if the queue-full event is lost.
check_cdq_overflow_event_lost() {
	local knob=/sys/module/nvme/parameters/lm_cdq_drop_full_events e
	[ -w "$knob" ] || fail "no $knob" || return
	fresh || return
	expect "$A" "cdq-create 8" OK || return
	echo 1 >"$knob"
	cdq_fill8 "$A"
	local st=$?
	echo 0 >"$knob"
	[ $st = 0 ] || return
	events "$A" "tail 0 full 0 overflow 0" "queue-full event dropped" || return
	e=$(cdq_read "$A" | tail -n1)
	[ "${e% ?}" = "7 2" ] || fail "last entry '$e', expected ESA 7" || return
	events "$A" "* overflow 1" "ESA 7 entry read, no event" || return
	# Drained: logging restarts.
	expect "$A" cdq-start OK || return
	expect "$A" cdq-stop OK || return
	e=$(cdq_read "$A" | cut -d' ' -f1 | tr '\n' ' ')
	[ "$e" = "1 2 " ] || fail "after the restart: ESAs '$e', expected 1 2" || return
	events "$A" "* overflow 1" "no second overflow" || return
	expect "$A" cdq-destroy OK
}

# The event and the ESA 7 entry of one full condition are one overflow, in
# either order, and reads in pieces do not report it twice.
check_cdq_overflow_reported_once() {
	fresh || return
	expect "$A" "cdq-create 8" OK || return
	cdq_fill8 "$A" || return
	events "$A" "tail 0 full 1 overflow 0" "full ring" || return
	[ "$(cdq_read "$A" 2 | wc -l)" = 2 ] || fail "a read of 2 entries" || return
	events "$A" "* overflow 1" "event first" || return
	[ "$(cdq_read "$A" | tail -n1 | cut -d' ' -f1)" = 7 ] || fail "no ESA 7 entry last" || return
	events "$A" "* overflow 1" "ESA 7 entry of the same condition" || return
	expect "$A" cdq-start OK || return
	cdq_fill8 "$A" || return		# its first start: already logging
	events "$A" "tail 0 full 2 *" "second full ring" || return
	cdq_read "$A" >/dev/null
	events "$A" "* overflow 2" "second condition" || return
	expect "$A" cdq-destroy OK
}

check_pf_reset() {
	local got bad
	fresh || return
	expect "$A" "cdq-create 16" OK || return
	expect "$A" cdq-start OK || return
	# A controller reset of the PF drops its CDQs (and, in QEMU, takes
	# the secondaries offline): handle operations fail or succeed with an
	# errno, nothing crashes, and the handle stays usable.
	nvme reset "$PF_DEV" || fail "PF reset failed" || return
	wait_ctrl_live "$PF_DEV" || return
	got=$(lmcmd "$A" cdq-start)
	[ "$got" = ENOENT ] || fail "CDQ start after PF reset: $got, expected ENOENT (queue gone)" || return
	expect "$A" cdq-destroy OK || return
	got=$(lmcmd "$A" suspend)
	echo "suspend after PF reset: $got"
	[ "$got" != ETIMEDOUT ] || fail "suspend after PF reset hung" || return
	lmcmd "$A" resume >/dev/null || fail "resume on $A timed out" || return
	expect "$A" "cdq-create 16" OK || return
	kernel_log_clean || return
}

check_pf_goes_away() {
	fresh || return
	expect "$A" "cdq-create 16" OK || return
	expect "$A" cdq-start OK || return

	# Unbinding the PF first releases the drivers of VFs holding handles:
	# the test driver lets go of them (and deletes the CDQ) on the way.
	echo "$PF" >/sys/bus/pci/drivers/nvme/unbind || fail "PF unbind failed" || return
	[ -z "$(bound_driver "$A")" ] && [ -z "$(bound_driver "$B")" ] ||
		fail "VF drivers still bound after PF unbind" || return
	[ ! -d "$DBG/$A" ] || fail "test driver still holds $A" || return
	# With the PF gone, a handle cannot be had.
	if echo "$A" >/sys/bus/pci/drivers_probe 2>/dev/null && [ -d "$DBG/$A" ]; then
		fail "a handle was acquired while the PF is unbound" || return
	fi
	rmmod nvme_lm_selftest || fail "rmmod nvme_lm_selftest failed" || return
	kernel_log_clean "outlives its PF|possible recursive|use-after-free" || return
	# The PF comes back as an ordinary nvme controller.
	echo "$PF" >/sys/bus/pci/drivers/nvme/bind || fail "PF rebind failed" || return
	PF_DEV=$(pci_nvme_dev "$PF") && wait_ctrl_live "$PF_DEV"
}

# A VF probe that is taking its handle while the PF is unbound: the
# service holds the probe inside nvme_lm_get() (lm_get_delay_ms) once it
# has the PF's controller; the unbind must wait for that probe and then
# release the VF's driver, never free the controller under it (KASAN).
check_probe_races_pf_unbind() {
	local delay=/sys/module/nvme/parameters/lm_get_delay_ms d=/sys/bus/pci/devices/$A
	[ -w "$delay" ] || fail "no $delay" || return
	[ -e "/sys/bus/pci/drivers/nvme/$PF" ] || fail "PF not on nvme" || return
	bind_driver "$A" "" || return
	modprobe nvme_vfio_pci || fail "modprobe nvme_vfio_pci failed" || return
	echo 3000 >"$delay"
	echo nvme-vfio-pci >"$d/driver_override"
	echo "$A" >/sys/bus/pci/drivers_probe &
	local probe=$! t0=$SECONDS
	sleep 1
	echo "$PF" >/sys/bus/pci/drivers/nvme/unbind || fail "PF unbind failed" || return
	wait "$probe"
	echo 0 >"$delay"
	echo "PF unbound and VF probe done in $((SECONDS - t0)) s; $A: '$(bound_driver "$A")'"
	suite_log | grep -E "$A: (live migration|no live migration|releasing)|releasing $A" | sed 's/^\[[^]]*\] //'
	if [ "$(bound_driver "$A")" = nvme-vfio-pci ]; then
		suite_log | grep -q "$A: no live migration" ||
			fail "$A kept a migration handle on the unbound PF" || return
	fi
	bind_driver "$A" "" || return
	kernel_log_clean "use-after-free|keeps its migration handle|outlives its PF" || return
	echo "$PF" >/sys/bus/pci/drivers/nvme/bind || fail "PF rebind failed" || return
	PF_DEV=$(pci_nvme_dev "$PF") && wait_ctrl_live "$PF_DEV"
}

NVME_LM=${NVME_LM:-$NVME_VFIO_REPO/tools/nvme-lm/target/release/nvme-lm}
cdev_of() { echo "/dev/vfio/devices/$(ls "/sys/bus/pci/devices/$1/vfio-dev" | head -n1)"; }

mode=${1:-ops}
case $mode in
ops) cases="handles_per_vf:check_handles suspend_resume:check_suspend_resume
	state_round_trip:check_state_round_trip cdq_markers_wrap:check_cdq_markers
	cdq_full_trigger_suspend:check_cdq_full_and_trigger
	cdq_trigger_survives_reads:check_cdq_trigger_survives_reads
	cdq_arm_counts_from_tail:check_cdq_arm_counts_from_tail
	cdq_overflow_event_lost:check_cdq_overflow_event_lost
	cdq_overflow_reported_once:check_cdq_overflow_reported_once" ;;
teardown) cases="pf_reset_while_held:check_pf_reset pf_goes_away:check_pf_goes_away
	probe_races_pf_unbind:check_probe_races_pf_unbind" ;;
io) ;;
*) echo "usage: pf-service.sh ops|io|teardown" >&2; exit 2 ;;
esac

errf=$(mktemp)
if ! setup >/dev/null 2>"$errf"; then
	ktap_begin "pf_service_$mode" 1
	ktap_not_ok setup "$(tail -n1 "$errf")"
	exit 1
fi
if [ "$mode" = io ]; then
	exec "$NVME_LM" selftest service --vf-a "$(cdev_of "$A")" --dbg-a "$DBG/$A" \
		--vf-b "$(cdev_of "$B")" --dbg-b "$DBG/$B"
fi
# PF_SERVICE_FILTER: only the cases whose name matches this extended
# regular expression (development).
if [ -n "${PF_SERVICE_FILTER:-}" ]; then
	cases=$(for c in $cases; do echo "$c"; done | grep -E "^[^:]*(${PF_SERVICE_FILTER})[^:]*:")
fi
ktap_begin "pf_service_$mode" "$(echo $cases | wc -w)"
for c in $cases; do
	ktap_check "${c%%:*}" "${c#*:}"
done
ktap_end
