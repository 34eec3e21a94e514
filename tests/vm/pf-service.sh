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
#   pf-service.sh media     namespace I/O for media migration: a claim on a
#                           VF's private namespace through the PF's block
#                           device (lm_media.c): byte-exact round trips both
#                           ways, write-zeroes, range and attachment errnos,
#                           exclusivity, throughput against dd, and the
#                           namespace or the PF's reset under a claim
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
	local got
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

# A CDQ created across a PF controller reset: the service holds the create
# between noting the PFs' disables and sending the command
# (lm_cdq_create_delay_ms) while the PF is reset. The queue the command
# made cannot be trusted (made before the reset and gone, or after it):
# the create fails with EAGAIN and a message, and deletes it on the device
# (where a second queue for the controller would be Invalid Field, so the
# next create shows none is left).
check_cdq_create_races_pf_reset() {
	local delay=/sys/module/nvme/parameters/lm_cdq_create_delay_ms out got create t0 i f
	[ -w "$delay" ] || fail "no $delay" || return
	fresh || return
	out=$(mktemp)
	# Long enough for the reset (nvme reset returns once the PF is live
	# again) to end first: the command then goes to the new controller.
	echo 6000 >"$delay"
	lmcmd "$A" "cdq-create 16" >"$out" &
	create=$!
	# Reset once the create sleeps in the service (its kernel stack says
	# so), past its Identify and its count of the PFs' disables.
	for i in $(seq 100); do
		for f in $(grep -las "cdq-create 16" /proc/[0-9]*/cmdline); do
			grep -qs nvme_lm_cdq_create "${f%cmdline}stack" && break 2
		done
		sleep 0.1
	done
	echo "the create sleeps in the service after $i polls"
	t0=$(date +%s%N)
	nvme reset "$PF_DEV" || fail "PF reset failed"
	echo "PF reset took $((($(date +%s%N) - t0) / 1000000)) ms"
	wait "$create"
	echo 0 >"$delay"
	got=$(cat "$out")
	rm -f "$out"
	wait_ctrl_live "$PF_DEV" || return
	echo "CDQ create across a PF reset: $got"
	[ "$got" = EAGAIN ] || fail "CDQ create across a PF reset: $got, expected EAGAIN" || return
	suite_log | grep -q "$A: CDQ: PF .* was reset while the queue was created" ||
		fail "no message naming the PF reset" || return
	expect "$A" "cdq-create 16" OK || return
	expect "$A" cdq-destroy OK || return
	kernel_log_clean || return
}

check_pf_goes_away() {
	fresh || return
	expect "$A" "cdq-create 16" OK || return
	expect "$A" cdq-start OK || return

	# Unbinding the PF first releases the drivers of VFs holding handles.
	# Their remove() only detaches the handles (put_after_remove): the test
	# driver keeps them, A's with its CDQ, until it is unloaded, with the PF
	# gone, as a driver whose VFIO device is released after its remove().
	echo 1 >/sys/module/nvme_lm_selftest/parameters/put_after_remove ||
		fail "no put_after_remove" || return
	echo "$PF" >/sys/bus/pci/drivers/nvme/unbind || fail "PF unbind failed" || return
	suite_log | grep -q "$A: handle detached, kept" || fail "$A's handle was not kept" || return
	[ -z "$(bound_driver "$A")" ] && [ -z "$(bound_driver "$B")" ] ||
		fail "VF drivers still bound after PF unbind" || return
	[ ! -d "$DBG/$A" ] || fail "test driver still holds $A" || return
	# With the PF gone, a handle cannot be had.
	if echo "$A" >/sys/bus/pci/drivers_probe 2>/dev/null && [ -d "$DBG/$A" ]; then
		fail "a handle was acquired while the PF is unbound" || return
	fi
	rmmod nvme_lm_selftest || fail "rmmod nvme_lm_selftest failed" || return
	kernel_log_clean "outlives its PF|keeps its migration handle|possible recursive|use-after-free" ||
		return
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

# --- media: namespace I/O through the PF ---------------------------------
# VF A (VFN 3) gets its private namespace NSID 4, attached to its controller
# and to the PF; NSID 5, VF B's, is attached to B's controller only.
NS_A=4 NS_B=5
MB=$((1 << 20))

# The PF's block device (/dev/nvmeXnY) for namespace $1 of PF device
# $PF_DEV: the visible node (the multipath one if any) with that NSID in
# the PF's subsystem. Waits up to 10 s for it to appear (or, with "gone",
# to disappear).
pf_blk() {
	local nsid=$1 want=${2:-present} nqn b n i
	nqn=$(cat "/sys/class/nvme/${PF_DEV#/dev/}/subsysnqn") || return 1
	for i in $(seq 100); do
		n=""
		for b in /sys/block/nvme*; do
			[ -e "/dev/${b##*/}" ] && [ "$(cat "$b/nsid" 2>/dev/null)" = "$nsid" ] &&
				[ "$(cat "$b/device/subsysnqn" 2>/dev/null)" = "$nqn" ] && n=/dev/${b##*/}
		done
		if [ "$want" = present ] && [ -n "$n" ]; then echo "$n"; return 0; fi
		if [ "$want" = gone ] && [ -z "$n" ]; then return 0; fi
		sleep 0.1
	done
	fail "NSID $nsid of $PF_DEV: block device not $want after 10 s" || return
}

# Print the errno name of os.open($1, $2) ("OK" if it opens).
try_open() {
	python3 - "$1" "$2" <<'PY'
import errno, os, sys
try:
    os.close(os.open(sys.argv[1], getattr(os, sys.argv[2])))
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))
PY
}

# media_io VF r|w OFFSET LEN FILE: LEN bytes at byte OFFSET of the claimed
# namespace into (r) or from (w) FILE, in one read()/write() of the media
# file (one batch); prints the errno name.
media_io() {
	python3 - "$DBG/$1/media" "$2" "$3" "$4" "$5" <<'PY'
import errno, os, sys
path, rw, off, ln, f = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
fd = os.open(path, os.O_RDWR)
try:
    if rw == "r":
        data = os.pread(fd, ln, off)
        if len(data) != ln:
            print(f"SHORT {len(data)}"); sys.exit()
        open(f, "wb").write(data)
    else:
        data = open(f, "rb").read()[:ln]
        n = os.pwrite(fd, data, off)
        if n != ln:
            print(f"SHORT {n}"); sys.exit()
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))
PY
}

# blk_io r|w DEV OFFSET LEN FILE: the same through the PF's block device,
# O_DIRECT (no page cache between the two paths).
blk_io() {
	local rw=$1 dev=$2 off=$(($3 / 4096)) cnt=$(($4 / 4096)) f=$5
	if [ "$rw" = r ]; then
		dd if="$dev" of="$f" bs=4096 skip="$off" count="$cnt" iflag=direct status=none
	else
		dd if="$f" of="$dev" bs=4096 seek="$off" count="$cnt" oflag=direct conv=notrunc,fsync status=none
	fi
}

# Each case starts from a fresh claim of VF A on its namespace, whatever the
# case before it left.
claimed() {
	lmcmd "$A" media-close >/dev/null || fail "media-close timed out" || return
	expect "$A" "media-buf 0" OK && expect "$A" "media-chunk $MB" OK &&
		expect "$A" "media-open $NS_A" OK
}

expect_io() { # VF r|w OFFSET LEN FILE ERRNO
	local got; got=$(media_io "$1" "$2" "$3" "$4" "$5")
	[ "$got" = "$6" ] || fail "media $2 of $4 bytes at $3 on $1: $got, expected $6" || return
}

media_setup() {
	local pcid
	pcid=$(pf_cntlid "$PF_DEV") || return 1
	W=$(mktemp -d)
	# Whatever an earlier run left: detached from everything first.
	local c
	for c in "$pcid" "$SCID_A" "$SCID_B"; do
		nvme detach-ns "$PF_DEV" -n $NS_A -c "$c" >/dev/null 2>&1
		nvme detach-ns "$PF_DEV" -n $NS_B -c "$c" >/dev/null 2>&1
	done
	attach_ns "$PF_DEV" $NS_A "$pcid,$SCID_A" || return
	attach_ns "$PF_DEV" $NS_B "$SCID_B" || return
	BLK_A=$(pf_blk $NS_A) || return
	pf_blk $NS_B gone || return
	lmcmd "$A" media-close >/dev/null
	expect "$A" "media-chunk $MB" OK && expect "$A" "media-buf 0" OK
}

check_media_attachment() {
	echo "NSID $NS_A: controllers PF and $SCID_A, PF block device $BLK_A; NSID $NS_B: controller $SCID_B only"
	expect "$A" "media-try 0" EINVAL || return
	# Attached to another VF's controller only: not this VF's to migrate.
	expect "$A" "media-try $NS_B" ENOENT || return
	# Attached to the VF's controller but not to the PF: unreachable.
	expect "$B" "media-try $NS_B" ENODEV || return
	expect "$A" "media-try $NS_A" OK || return
	expect "$A" media-close ENOENT || return	# nothing held
	suite_log | grep -q "$B: media migration: NSID $NS_B: the PF has no namespace" ||
		fail "no dev_err on $B naming why NSID $NS_B was refused" || return
	suite_log | grep -q "$A: media migration: NSID $NS_B: not attached to the VF's controller" ||
		fail "no dev_err on $A naming why NSID $NS_B was refused" || return
}

# Byte-exact round trips of 2 MiB, each way, with every kind of buffer:
# kmalloc in a batch of eight concurrent 256 KiB I/Os; vmalloc, and
# vmalloc 512 bytes into a page (two bios per I/O), in batches of two 1 MiB
# I/Os.
check_media_round_trip() {
	local kind off info chunk bytes len=$((2 * MB))
	claimed || return
	info=$(cat "$DBG/$A/media-info")
	echo "claim: NSID, NSZE, LBADS = $info"
	bytes=$(blockdev --getsize64 "$BLK_A") || fail "no size for $BLK_A" || return
	[ "$info" = "$NS_A $((bytes / 512)) 9" ] || [ "$info" = "$NS_A $((bytes / 4096)) 12" ] ||
		fail "claim info '$info', expected NSID $NS_A and the $bytes bytes of $BLK_A" || return
	for kind in 0 1 2; do
		off=$(((1 + 4 * kind) * MB)) chunk=$MB
		[ $kind != 0 ] || chunk=$((256 << 10))
		expect "$A" "media-buf $kind" OK && expect "$A" "media-chunk $chunk" OK || return
		head -c $len /dev/urandom >"$W/p$kind" || return 1
		expect_io "$A" w $off $len "$W/p$kind" OK || return
		expect "$A" media-flush OK || return
		expect "$A" media-close OK || return
		blk_io r "$BLK_A" $off $len "$W/back$kind" || fail "dd from $BLK_A failed" || return
		cmp -s "$W/p$kind" "$W/back$kind" ||
			fail "buffer kind $kind: written through the claim, $BLK_A reads back other bytes" || return
		# The other way: through the block device, read through the claim.
		head -c $len /dev/urandom >"$W/q$kind" || return 1
		blk_io w "$BLK_A" $((off + len)) $len "$W/q$kind" || fail "dd to $BLK_A failed" || return
		expect "$A" "media-open $NS_A" OK || return
		expect_io "$A" r $((off + len)) $len "$W/qback$kind" OK || return
		cmp -s "$W/q$kind" "$W/qback$kind" ||
			fail "buffer kind $kind: written to $BLK_A, the claim reads back other bytes" || return
		echo "buffer kind $kind (kmalloc, vmalloc, vmalloc+512), I/Os of $chunk bytes: 2 MiB each way, byte-exact"
	done
	expect "$A" "media-buf 0" OK
}

# Write-zeroes zeroes exactly its range: one short range and one of 5 MiB
# (more than one I/O's limit), the blocks around each untouched.
check_media_write_zeroes() {
	local lbads bs first nlb range
	claimed || return
	lbads=$(cut -d' ' -f3 "$DBG/$A/media-info") || return 1
	bs=$((1 << lbads))
	expect "$A" "media-chunk $MB" OK || return
	python3 -c "import sys; sys.stdout.buffer.write(b'\xa5' * (8 << 20))" >"$W/ff" || return 1
	for range in "$((8 * MB / bs + 8)) 3" "$((8 * MB / bs + 1)) $((5 * MB / bs))"; do
		read -r first nlb <<<"$range"
		expect_io "$A" w $((8 * MB)) $((8 * MB)) "$W/ff" OK || return
		expect "$A" "media-zero $first $nlb" OK || return
		expect_io "$A" r $((8 * MB)) $((8 * MB)) "$W/z" OK || return
		python3 - "$W/z" $(((first * bs) - 8 * MB)) $((nlb * bs)) <<'PY' || fail "write-zeroes of LBAs $range: wrong bytes" || return
import sys
d = open(sys.argv[1], "rb").read()
a, n = int(sys.argv[2]), int(sys.argv[3])
want = b"\xa5" * a + b"\0" * n + b"\xa5" * (len(d) - a - n)
if d != want:
    i = next(i for i in range(len(d)) if d[i] != want[i])
    sys.exit(f"first wrong byte at {i}: {d[i]:#x}, expected {want[i]:#x}")
PY
		echo "write-zeroes of $nlb blocks at LBA $first: exactly those zeroed"
	done
}

# Blocks beyond the namespace: ERANGE, and nothing of the batch written.
check_media_out_of_range() {
	local nsze lbads cap
	claimed || return
	read -r _ nsze lbads <"$DBG/$A/media-info" || return 1
	cap=$((nsze << lbads))
	expect "$A" "media-chunk $((256 << 10))" OK || return
	head -c $((2 * MB)) /dev/urandom >"$W/r" || return 1
	expect_io "$A" r $((cap - MB)) $MB "$W/tail0" OK || return
	# Eight I/Os, the last four past the end: none is submitted.
	expect_io "$A" w $((cap - MB)) $((2 * MB)) "$W/r" ERANGE || return
	expect_io "$A" r $((cap - MB)) $MB "$W/tail1" OK || return
	cmp -s "$W/tail0" "$W/tail1" || fail "a refused batch wrote the blocks within range" || return
	expect "$A" "media-zero $nsze 1" ERANGE || return
	expect "$A" "media-zero $((nsze - 1)) 2" ERANGE || return
	expect "$A" "media-zero 0 0" EINVAL || return
	expect_io "$A" r $((cap - MB)) $MB "$W/tail2" OK || return
	cmp -s "$W/tail0" "$W/tail2" || fail "a refused write-zeroes wrote" || return
	expect "$A" "media-zero $((nsze - 1)) 1" OK || return	# the last block is in range
	echo "capacity $nsze blocks: batches and write-zeroes past it refused with ERANGE, nothing written"
}

# While claimed, no other writer: the block device does not open for
# writing (it still opens for reading), and a second claim fails; after the
# claim is closed both work again. A writer holding the block device keeps
# a claim from being made.
check_media_exclusive() {
	local got
	claimed || return
	got=$(try_open "$BLK_A" O_WRONLY)
	[ "$got" = EBUSY ] || fail "open($BLK_A, O_WRONLY) while claimed: $got, expected EBUSY" || return
	got=$(try_open "$BLK_A" O_RDONLY)
	[ "$got" = OK ] || fail "open($BLK_A, O_RDONLY) while claimed: $got" || return
	expect "$A" "media-try $NS_A" EBUSY || return
	expect "$A" media-close OK || return
	got=$(try_open "$BLK_A" O_WRONLY)
	[ "$got" = OK ] || fail "open($BLK_A, O_WRONLY) after the claim: $got" || return
	exec 7<>"$BLK_A" || fail "cannot hold $BLK_A open for writing" || return
	got=$(lmcmd "$A" "media-open $NS_A")
	exec 7>&-
	[ "$got" = EBUSY ] || fail "claim while $BLK_A is open for writing: $got, expected EBUSY" || return
	expect "$A" "media-open $NS_A" OK
}

# MiB/s of reading the namespace: the best of three passes of $@.
mibps() {
	local best=0 i t0 t1 r
	for i in 1 2 3; do
		t0=$(date +%s%N)
		"$@" || return 1
		t1=$(date +%s%N)
		r=$((16 * 1000000000 / ((t1 - t0) > 0 ? (t1 - t0) : 1)))
		[ "$r" -le "$best" ] || best=$r
	done
	echo "$best"
}

# Sequential read of the namespace's first 16 MiB: through the claim,
# batches of 8 x 1 MiB (kmalloc), against dd of the block device (O_DIRECT,
# 1 MiB).
check_media_throughput() {
	local claim blk
	claimed || return
	expect "$A" "media-chunk $MB" OK && expect "$A" "media-buf 0" OK || return
	claim=$(mibps dd if="$DBG/$A/media" of="$W/all-claim" bs=$((8 * MB)) count=2 status=none) ||
		fail "reading through the claim failed" || return
	expect "$A" media-close OK || return
	blk=$(mibps dd if="$BLK_A" of="$W/all-blk" bs=$MB count=16 iflag=direct status=none) ||
		fail "dd of $BLK_A failed" || return
	[ "$(stat -c %s "$W/all-claim")" = $((16 * MB)) ] || fail "short read through the claim" || return
	cmp -s "$W/all-claim" "$W/all-blk" || fail "the claim and $BLK_A read different bytes" || return
	echo "media read 16 MiB: claim (8 x 1 MiB batches) $claim MiB/s, dd O_DIRECT 1 MiB $blk MiB/s, ratio $(awk -v a="$claim" -v b="$blk" 'BEGIN { printf "%.2f", b ? a / b : 0 }')"
	expect "$A" "media-open $NS_A" OK
}

# The PF unbound under a claim: nvme_remove() first releases the VF's
# driver, which closes the claim before its handle; nothing leaks or is
# touched after it is freed (KASAN, kmemleak, kernel log). With the PF and
# the test driver back, the namespace is claimed again.
check_media_pf_unbound() {
	claimed || return
	echo "$PF" >/sys/bus/pci/drivers/nvme/unbind || fail "PF unbind failed" || return
	[ -z "$(bound_driver "$A")" ] || fail "$A still bound after the PF unbind" || return
	kernel_log_clean "use-after-free|keeps its migration handle" || return
	echo "$PF" >/sys/bus/pci/drivers/nvme/bind || fail "PF rebind failed" || return
	PF_DEV=$(pci_nvme_dev "$PF") && wait_ctrl_live "$PF_DEV" || return
	# The PF's reset took its secondary controllers offline (QEMU).
	online_vf "$PF_DEV" "$SCID_A" && online_vf "$PF_DEV" "$SCID_B" || return
	bind_driver "$A" nvme_lm_selftest && bind_driver "$B" nvme_lm_selftest || return
	BLK_A=$(pf_blk $NS_A) || return
	expect "$A" "media-open $NS_A" OK || return
	echo "PF unbound with NSID $NS_A claimed: claim released with the VF's driver; claimed again on $BLK_A"
}

# A PF controller reset under the claim: I/O works again once the PF is
# live (the namespace and the claim are unchanged), the data intact. The
# namespace detached from the PF under the claim: I/O fails with ENODEV,
# the claim still closes, nothing else is touched (KASAN, kernel log).
check_media_pf_changes() {
	local pcid got
	claimed || return
	pcid=$(pf_cntlid "$PF_DEV") || return 1
	head -c $MB /dev/urandom >"$W/s" || return 1
	expect "$A" "media-chunk $MB" OK || return
	expect_io "$A" w 0 $MB "$W/s" OK || return
	nvme reset "$PF_DEV" || fail "PF reset failed" || return
	wait_ctrl_live "$PF_DEV" || return
	expect_io "$A" r 0 $MB "$W/s1" OK || return
	cmp -s "$W/s" "$W/s1" || fail "data read through the claim after a PF reset differs" || return
	echo "PF reset under the claim: I/O works again, data intact"
	detach_ns "$PF_DEV" $NS_A "$pcid" || return
	pf_blk $NS_A gone || return
	got=$(media_io "$A" r 0 $MB "$W/s2")
	[ "$got" = ENODEV ] || fail "I/O after the namespace left the PF: $got, expected ENODEV" || return
	expect "$A" "media-zero 0 1" ENODEV || return
	expect "$A" media-flush ENODEV || return
	expect "$A" media-close OK || return
	expect "$A" "media-try $NS_A" ENODEV || return
	echo "namespace detached from the PF under the claim: ENODEV, claim closed"
	detach_ns "$PF_DEV" $NS_A "$SCID_A" && detach_ns "$PF_DEV" $NS_B "$SCID_B" || return
	rm -rf "$W"
	kernel_log_clean "use-after-free|WARNING|BUG" || return
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
teardown) cases="pf_reset_while_held:check_pf_reset
	cdq_create_races_pf_reset:check_cdq_create_races_pf_reset pf_goes_away:check_pf_goes_away
	probe_races_pf_unbind:check_probe_races_pf_unbind" ;;
media) cases="media_attachment:check_media_attachment media_round_trip:check_media_round_trip
	media_write_zeroes:check_media_write_zeroes media_out_of_range:check_media_out_of_range
	media_exclusive:check_media_exclusive media_throughput:check_media_throughput
	media_pf_unbound:check_media_pf_unbound media_pf_changes:check_media_pf_changes" ;;
io) ;;
*) echo "usage: pf-service.sh ops|io|teardown|media" >&2; exit 2 ;;
esac

errf=$(mktemp)
if ! { setup && { [ "$mode" != media ] || media_setup; }; } >/dev/null 2>"$errf"; then
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
