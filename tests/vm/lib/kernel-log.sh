# shellcheck shell=bash
# The kernel's health around tests: its log, read from /dev/kmsg by record
# sequence number (a cursor; nothing ever clears the log), its taint flags,
# and kmemleak (the guest boots with kmemleak=on). Sourced after
# lib/ktap.sh (fail).
#
#   kernel_log_cursor            the sequence number of the next record
#   kernel_log_since SEQ [FILE]  the records from SEQ on, as "[seconds] text";
#                                writes the next cursor to FILE; fails if
#                                records from SEQ on were overwritten
#   kernel_log_mark              sets KERNEL_LOG_START: the suite begins here
#   suite_log                    the records since KERNEL_LOG_START
#   kernel_log_clean [ERE]       fails on a bad line (KERNEL_LOG_BAD, or ERE)
#                                since KERNEL_LOG_START (the suite's cursor;
#                                the whole log if unset)
#   kernel_health_step DIR       the log since the previous step and new taint
#                                flags (state in DIR), for tests/vm/run-tests.sh
#   kmemleak_baseline ERE        the boot's unreferenced objects: fails if one
#                                is from code matching ERE, clears the others
#   kmemleak_none                fails if there is any unreferenced object
# Every kmemleak function fails if kmemleak is absent or off.

# What the kernel log must never show: warnings, BUGs (KASAN's included),
# oopses, lockdep reports, UBSAN, hung or locked-up tasks, RCU stalls, leaks
# kmemleak reported by itself, any other stack dump.
KERNEL_LOG_BAD='\<(WARNING|BUG)\>|Oops|KASAN|UBSAN|circular locking|recursive locking|inconsistent lock state|possible deadlock|lock held when returning|bad unlock balance|blocked for more than|soft lockup|hard LOCKUP|detected stall|general protection fault|Kernel panic|suspected memory leak|Call Trace'
# TAINT_TEST: KUnit sets it when a test runs; every other flag is a failure.
TAINT_TEST_BIT=18
TAINT_LETTERS=PFSRMBUDAWCIOELKXTNJ
KMEMLEAK=/sys/kernel/debug/kmemleak

_kmsg() {
	python3 - "$@" <<'PY'
import os, sys
recs, lost = [], False
fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
while True:
    try:
        rec = os.read(fd, 16384)
    except BlockingIOError:
        break
    except BrokenPipeError:  # overwritten while we read
        lost = True
        continue
    head, _, body = rec.decode("utf-8", "replace").partition(";")
    f = head.split(",")
    recs.append((int(f[1]), int(f[2]), body.split("\n", 1)[0]))
nxt = recs[-1][0] + 1 if recs else 0
if sys.argv[1] == "cursor":
    print(nxt)
    sys.exit(0)
start = int(sys.argv[2])
for seq, usec, msg in recs:
    if seq >= start:
        print(f"[{usec / 1e6:12.6f}] {msg}")
if len(sys.argv) > 3:
    with open(sys.argv[3], "w") as out:
        out.write(f"{nxt}\n")
first = recs[0][0] if recs else nxt
if first > start or lost:
    print(f"kernel log: records {start} to {first - 1} were overwritten before they were read "
          "(log_buf_len too small)", file=sys.stderr)
    sys.exit(3)
PY
}

kernel_log_cursor() { _kmsg cursor; }
kernel_log_since() { _kmsg since "$@"; }
# A suite's own part of the log: kernel_log_mark where it begins (instead of
# clearing the log, which would hide what came before from the checks after
# every suite), suite_log to read what came since.
kernel_log_mark() { KERNEL_LOG_START=$(kernel_log_cursor); }
suite_log() { kernel_log_since "${KERNEL_LOG_START:-0}"; }

kernel_log_clean() {
	local log bad re=$KERNEL_LOG_BAD
	[ -z "${1:-}" ] || re="$re|$1"
	log=$(kernel_log_since "${KERNEL_LOG_START:-0}") || return
	bad=$(grep -E "$re" <<<"$log" | head -3)
	[ -z "$bad" ] || fail "kernel reported: $bad"
}

# Taint flags $1 as letters.
taint_letters() {
	local i s=""
	for i in $(seq 0 $((${#TAINT_LETTERS} - 1))); do
		[ $(($1 >> i & 1)) -eq 0 ] || s+=${TAINT_LETTERS:i:1}
	done
	echo "$s"
}

# Prints the bad lines (with what follows the first) on stdout, the reasons
# on stderr.
kernel_health_step() {
	local dir=$1 cur log bad taint prev new rc=0
	cur=$(cat "$dir/cursor" 2>/dev/null || echo 0)
	log=$(kernel_log_since "$cur" "$dir/cursor") || rc=1
	bad=$(grep -E "$KERNEL_LOG_BAD" <<<"$log")
	if [ -n "$bad" ]; then
		grep -m1 -A30 -E "$KERNEL_LOG_BAD" <<<"$log"
		echo "... $(wc -l <<<"$bad") bad lines in all:"
		head -n20 <<<"$bad"
		fail "kernel log: $(head -n1 <<<"$bad" | cut -c1-160)"
		rc=1
	fi
	taint=$(($(cat /proc/sys/kernel/tainted) & ~(1 << TAINT_TEST_BIT)))
	prev=$(cat "$dir/taint" 2>/dev/null || echo 0)
	echo "$taint" >"$dir/taint"
	new=$((taint & ~prev))
	if [ "$new" -ne 0 ]; then
		fail "kernel tainted: $(taint_letters "$new") (/proc/sys/kernel/tainted $(cat /proc/sys/kernel/tainted))"
		rc=1
	fi
	return $rc
}

# Unreferenced objects are reported once older than kmemleak's minimum age
# (5 s) and unchanged since the previous scan: wait, then scan twice.
kmemleak_scan() {
	[ -e "$KMEMLEAK" ] || fail "kmemleak absent: no $KMEMLEAK (CONFIG_DEBUG_KMEMLEAK off?)" || return
	sleep 6
	{ echo scan >"$KMEMLEAK" && echo scan >"$KMEMLEAK"; } 2>/dev/null ||
		fail "kmemleak off: a scan was refused (booted with kmemleak=off, or it failed)" || return
}

# The boot's unreferenced objects: fails if one was allocated from code
# matching ERE (ours), lists the others and clears them (they are not
# reported again), so kmemleak_none at the end sees only what the tests left.
kmemleak_baseline() {
	local n
	kmemleak_scan || return
	n=$(grep -c "^unreferenced object" "$KMEMLEAK")
	echo "kmemleak: $n unreferenced objects at boot"
	[ "$n" -eq 0 ] || grep -A14 "^unreferenced object" "$KMEMLEAK" | grep -E "^unreferenced|^\s+\[<" | head -n 40
	if grep -A14 "^unreferenced object" "$KMEMLEAK" | grep -qE "$1"; then
		fail "kmemleak: an object allocated from code matching '$1' was unreferenced at boot"
		return
	fi
	echo clear >"$KMEMLEAK"
}

kmemleak_none() {
	local n
	kmemleak_scan || return
	n=$(grep -c "^unreferenced object" "$KMEMLEAK")
	[ "$n" -eq 0 ] || { head -n60 "$KMEMLEAK"; fail "kmemleak: $n unreferenced objects"; } || return
	echo "kmemleak: no unreferenced object"
}
