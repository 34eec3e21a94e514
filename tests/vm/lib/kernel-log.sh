# shellcheck shell=bash
# The kernel log and kmemleak around a test (the guest boots with
# kmemleak=on).

# Fails naming the first warning, bug or lockdep report in the kernel log,
# or line matching the extended regex $1 (what else the test must not see).
kernel_log_clean() {
	local bad re="WARNING|BUG|circular locking"
	[ -z "${1:-}" ] || re="$re|$1"
	bad=$(dmesg | grep -E "$re" | head -3)
	[ -z "$bad" ] || fail "kernel reported: $bad"
}

# Forget what is unreferenced so far: only what a test leaks counts.
kmemleak_baseline() {
	[ -e /sys/kernel/debug/kmemleak ] || return 0
	echo scan >/sys/kernel/debug/kmemleak 2>/dev/null
	echo clear >/sys/kernel/debug/kmemleak 2>/dev/null
}

# Fails if an unreferenced object was allocated from code matching $1 (an
# extended regex over the backtraces).
kmemleak_check() {
	local bad
	[ -e /sys/kernel/debug/kmemleak ] || return 0
	sleep 1
	echo scan >/sys/kernel/debug/kmemleak
	bad=$(grep -A12 "unreferenced object" /sys/kernel/debug/kmemleak | grep -m1 -E "$1")
	[ -z "$bad" ] || fail "kmemleak: $bad" || return
	echo "kmemleak: nothing of ours unreferenced"
}
