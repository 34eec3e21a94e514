#!/bin/bash
# Media migration (KTAP suite media_migration): a VF whose storage is a
# local, private namespace moves to a VF on the other host (another NVM
# subsystem) with the namespace's data in the VFIO migration stream, when
# the operator opted both VFs in (/sys/bus/pci/devices/<VF>/media_migration,
# before the VFIO device is opened).
#
# The test bed (tests/vm/run-vm.py): hosts a and b, each an SR-IOV PF of its
# own subsystem; VF n (VFN, 1-based) of either host has the private NSID
# n + 1 (256 MiB). For the suite, VF0 and VF1 of both hosts have ONLY their
# private namespace attached (NSID 1 detached from their controllers, put
# back at the end), the PFs have it too: the tests compare the two hosts'
# copies through the PFs' block devices. Host a VF0 -> host b VF0 moves
# NSID 2, host a VF1 -> host b VF1 NSID 3.
#
# nvme-lm media-migrate runs the client (random writes, Write Zeroes,
# deallocates) through the PRE_COPY rounds and verifies its model of the
# namespace on the destination; nvme-lm media-resume feeds captured or
# mutated streams to a destination.
. "$(dirname "$0")/lib/ktap.sh"
. "$(dirname "$0")/lib/sriov.sh"
. "$(dirname "$0")/lib/kernel-log.sh"
. "$(dirname "$0")/lib/media.sh"
NVME_LM=${NVME_LM:-$NVME_VFIO_REPO/tools/nvme-lm/target/release/nvme-lm}
D=$(mktemp -d)

setup() { media_setup && kernel_log_mark; }

# reload_with ENTRIES: nvme_vfio_pci loaded again with
# media_cdq_entries=ENTRIES (a load-time parameter; empty: the default), and
# the four VFs bound to it again (their media_migration options off).
reload_with() {
	rmmod nvme_vfio_pci || fail "rmmod nvme_vfio_pci failed" || return
	modprobe nvme_vfio_pci ${1:+media_cdq_entries=$1} ||
		fail "modprobe nvme_vfio_pci ${1:+media_cdq_entries=$1} failed" || return
	media_bind
}

# media_migrate ARGS...: nvme-lm media-migrate, its output in $D/out.
media_migrate() { "$NVME_LM" media-migrate "$@" >"$D/out" 2>&1; }
# media_resume ARGS...: nvme-lm media-resume to host b's VF1.
media_resume() {
	"$NVME_LM" media-resume --vf "$CDEV_B1" "$@"
}

# The report's lines worth keeping in the KTAP diagnostics.
report() {
	grep -E "^(media-migrate|source:|destination:|cleared|prefill|PRE_COPY entered|round |pre-copy|stop-copy|downtime|stream|  records|  namespace|DATA|verify|load|written-bytes|data-bytes|kernel log|result|migration failed|source after)" "$D/out"
}

# ok_or_fail: the migration in $D/out succeeded, or fail with its error.
ok_or_fail() {
	[ "$1" -eq 0 ] && return 0
	report
	fail "media-migrate failed: $(grep -m1 '^nvme-lm: error' "$D/out" || tail -n1 "$D/out")"
}

check_local_storage_migrates() {
	local r
	media "$A0" 1 && media "$B0" 1 || return
	media_migrate --vf-a "$CDEV_A0" --vf-b "$CDEV_B0" --nsid 2 --rounds 3 --load-mbps 1 --round-seconds 600 \
		--prefill-mib 8 --save "$D/local.stream" --in-flight-ranges "$D/in-flight"
	ok_or_fail $? || return
	report
	grep -q "^result: OK" "$D/out" || fail "no result line: $(tail -n1 "$D/out")" || return
	grep -qE "^DATA: [1-9]" "$D/out" || fail "the stream carried no DATA record" || return
	# Several dirty rounds: each loaded round after the bulk copy's resent
	# what the load dirtied meanwhile.
	for r in 2 3; do
		grep -qE "^round $r: load on, [1-9][0-9]* commands, [1-9][0-9]* bytes" "$D/out" ||
			fail "round $r resent nothing: $(grep -m1 "^round $r:" "$D/out")" || return
	done
	# Both VFs were reset when media-migrate closed them: the namespaces
	# hold what the migration left (the commands in flight at the stop
	# that the source had not fetched ran on host b only).
	ns_cmp 2 "$D/in-flight"
}

check_sparse_payload() {
	local w d
	media "$A1" 1 && media "$B1" 1 || return
	# NSID 3 was never written: 4 MiB in 256 KiB extents, no load.
	media_migrate --vf-a "$CDEV_A1" --vf-b "$CDEV_B1" --nsid 3 --fresh --rounds 1 --rate 0 \
		--prefill-mib 4 --save "$D/sparse.stream" --in-flight-ranges "$D/in-flight"
	ok_or_fail $? || return
	report
	w=$(sed -n 's/^written-bytes: //p' "$D/out") && d=$(sed -n 's/^data-bytes: //p' "$D/out")
	[ -n "$w" ] && [ -n "$d" ] || fail "no written-bytes / data-bytes in the report" || return
	echo "256 MiB namespace, $w bytes written: $d bytes of DATA payload ($(awk -v d="$d" -v w="$w" 'BEGIN { printf "%.3f", d / w }') x), stream $(stat -c %s "$D/sparse.stream") bytes"
	awk -v d="$d" -v w="$w" 'BEGIN { exit !(d <= 1.1 * w) }' ||
		fail "DATA payload $d bytes > 1.1 x the $w bytes written: zero ranges not compacted" || return
	ns_cmp 3 "$D/in-flight"
}

# The VMM stops the device in the middle of the bulk copy: the rest of the
# namespace travels in STOP_COPY (the batch read ahead before the stop
# included), MIG_DATA_SIZE after the stop is exact (media-migrate checks),
# and the namespaces are equal.
check_stopped_during_bulk() {
	local left stop
	media "$A0" 1 && media "$B0" 1 || return
	media_migrate --vf-a "$CDEV_A0" --vf-b "$CDEV_B0" --nsid 2 --keep --rounds 1 --load-mbps 1 \
		--prefill-mib 4 --stop-at-initial-mib 192 --in-flight-ranges "$D/in-flight"
	ok_or_fail $? || return
	report
	grep -q "^result: OK" "$D/out" || fail "no result line: $(tail -n1 "$D/out")" || return
	grep -q "^pre-copy: .*stopped before converging" "$D/out" ||
		fail "PRE_COPY converged before the stop: $(grep -m1 '^pre-copy:' "$D/out")" || return
	left=$(sed -n 's/^stopping early: .* initial_bytes \([0-9]*\) .*/\1/p' "$D/out")
	stop=$(sed -n 's/^stop-copy: \([0-9]*\) bytes.*/\1/p' "$D/out")
	# The bulk copy left at the stop came in STOP_COPY, as DATA records
	# (no zero compaction once stopped).
	[ -n "$left" ] && [ -n "$stop" ] && [ "$left" -gt $((64 << 20)) ] && [ "$stop" -ge "$left" ] ||
		fail "initial_bytes $left at the stop, STOP_COPY $stop bytes: expected more than 64 MiB left, all of it in STOP_COPY" || return
	ns_cmp 2 "$D/in-flight"
}

check_cdq_full() {
	local rc cur log line reason
	reload_with 64 || return
	media "$A0" 1 && media "$B0" 1 || return
	cur=$(kernel_log_cursor)
	media_migrate --vf-a "$CDEV_A0" --vf-b "$CDEV_B0" --nsid 2 --rounds 4 --rate 64 --in-flight-ranges "$D/in-flight"
	rc=$?
	reload_with || return
	report
	log=$(kernel_log_since "$cur")
	line=$(grep -m1 "the dirty-LBA queue filled up" <<<"$log")
	[ -n "$line" ] || fail "media_cdq_entries=64: no \"the dirty-LBA queue filled up\" in the kernel log" || return
	echo "kernel log: $line"
	if [ "$rc" -eq 0 ]; then
		echo "outcome: migrated with the queue full (everything copied marked dirty and resent)"
		ns_cmp 2 "$D/in-flight"
	else
		# A refusal must say why: the tool's error, and the driver's. Wrong
		# data on the destination is no refusal.
		local why
		why=$(grep -m1 '^migration failed' "$D/out" || grep -m1 '^nvme-lm: error' "$D/out")
		! grep -qE "on the destination|the client's model|CRC|MIG_DATA_SIZE said" "$D/out" ||
			fail "media_cdq_entries=64: the migration completed wrong: $why" || return
		echo "outcome: refused: $why"
		reason=$(grep -E "($A0|$B0)" <<<"$log" | grep -v "filled up" | grep -iE "dirty|media|rejected|refus")
		[ -n "$reason" ] ||
			fail "the migration failed ($why) and the driver logged no reason besides the overflow" || return
		echo "driver: $(head -n1 <<<"$reason")"
	fi
}

# Each bad stream: mutation, what the destination must do (media-resume
# --expect), and what its dev_err must name (ERE, case-insensitive). One
# place to adjust when codec::media's wording lands.
BAD_STREAMS=(
	"beyond_capacity write:ERANGE capacit|beyond|NSZE|out of range|past the end"
	"unknown_nsid write:EINVAL NSID|namespace"
	"huge_nlb write:ERANGE NLB|too large|length|MiB|size"
	"truncated stop truncat|incomplete|short|mid-record|ends|ended early"
	"after_end write:EINVAL after the end|after END|trailing|after end"
)

check_bad_streams() {
	local s=$D/sparse.stream m expect re cur log line n1 n2 n1b n2b rc
	[ -s "$s" ] || fail "no captured stream: sparse_namespace_payload did not save one" || return
	media "$B1" 1 || return
	# Canaries: host b's other namespaces, through the PF.
	n1=$(ns_sum b 1) && n2=$(ns_sum b 2) || return
	for c in "${BAD_STREAMS[@]}"; do
		read -r m expect re <<<"$c"
		cur=$(kernel_log_cursor) rc=0
		media_resume --stream "$s" --mutate "$m" --expect "$expect" --then-good >"$D/out" 2>&1 ||
			rc=$?
		sed "s/^/$m: /" "$D/out"
		[ "$rc" -eq 0 ] || fail "$m: $(grep -m1 '^nvme-lm: error' "$D/out")" || return
		log=$(kernel_log_since "$cur")
		line=$(grep -m1 "$B1: migration stream rejected" <<<"$log")
		[ -n "$line" ] || fail "$m: no \"$B1: migration stream rejected\" in the kernel log" || return
		echo "$m: kernel log: $line"
		grep -qiE "$re" <<<"${line#*migration stream rejected}" ||
			fail "$m: the dev_err does not name it (/$re/): $line" || return
	done
	# Mode mismatch: the destination not opted in refuses the media
	# source's compatibility record (its session is left as it was before
	# the refused write, as any session without media: --plain).
	media "$B1" 0 || return
	cur=$(kernel_log_cursor) rc=0
	media_resume --stream "$s" --expect write:ERANGE --plain >"$D/out" 2>&1 || rc=$?
	media "$B1" 1
	sed "s/^/mode_mismatch: /" "$D/out"
	[ "$rc" -eq 0 ] || fail "mode_mismatch: $(grep -m1 '^nvme-lm: error' "$D/out")" || return
	grep -q "^refused: write of record 0 (COMPAT" "$D/out" ||
		fail "mode_mismatch: not refused at the compatibility record: $(grep -m1 '^refused' "$D/out")" || return
	line=$(kernel_log_since "$cur" | grep -m1 "$B1: migration stream rejected: incompatible source: ")
	[ -n "$line" ] || fail "mode_mismatch: no \"$B1: migration stream rejected: incompatible source:\" dev_err" || return
	echo "mode_mismatch: kernel log: $line"
	# Usable after all that: the good stream loads (media on again).
	media_resume --stream "$s" --expect ok >"$D/out" 2>&1 ||
		fail "after the bad streams, the good stream: $(grep -m1 '^nvme-lm: error' "$D/out")" || return
	echo "after the bad streams: $(grep -m1 '^accepted' "$D/out")"
	n1b=$(ns_sum b 1) && n2b=$(ns_sum b 2) || return
	[ "$n1" = "$n1b" ] || fail "host b NSID 1 changed ($n1 -> $n1b): a bad stream wrote outside its namespace" || return
	[ "$n2" = "$n2b" ] || fail "host b NSID 2 changed ($n2 -> $n2b): a bad stream wrote outside its namespace" || return
	echo "canaries: host b NSID 1 ($n1) and NSID 2 ($n2) unchanged"
	# The good stream loaded last: NSID 3 holds the source's data again.
	ns_cmp 3
}

check_media_off_refused() {
	local rc
	media "$A0" 0 && media "$B0" 0 || return
	media_migrate --vf-a "$CDEV_A0" --vf-b "$CDEV_B0" --nsid 2 --rounds 1 --load-mbps 0.5 --round-seconds 300 --prefill-mib 1
	rc=$?
	report
	[ "$rc" -ne 0 ] || fail "media off: the migration to host b succeeded" || return
	grep -q "^migration failed: PRE_COPY round 1: the destination refused the stream" "$D/out" ||
		fail "not refused in PRE_COPY: $(grep -m1 '^migration failed\|^nvme-lm: error' "$D/out")" || return
	grep -q "(ERANGE)" "$D/out" || fail "refused, not with ERANGE: $(grep -m1 '^migration failed' "$D/out")" || return
	grep -q "^source after the failure: I/O written and verified$" "$D/out" ||
		fail "the source did no verified I/O after the refusal" || return
	suite_log | grep -m1 "$B0: migration stream rejected: incompatible source: different NVM subsystem" ||
		fail "no dev_err on $B0 naming 'different NVM subsystem'" || return
}

CASES="local_storage_migrates_to_other_host:check_local_storage_migrates
	sparse_namespace_payload:check_sparse_payload
	stopped_during_bulk_copy:check_stopped_during_bulk
	cdq_full_still_exact:check_cdq_full
	bad_streams_refused:check_bad_streams
	media_off_refuses_other_subsystem:check_media_off_refused"
ktap_begin media_migration "$(echo $CASES | wc -w)"
errf=$(mktemp)
if ! setup >/dev/null 2>"$errf"; then
	for c in $CASES; do ktap_not_ok "${c%%:*}" "setup: $(tail -n1 "$errf")"; done
	exit 1
fi
for c in $CASES; do
	ktap_check "${c%%:*}" "${c#*:}"
done
media_teardown
rm -rf "$D"
ktap_end
