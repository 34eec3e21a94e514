# shellcheck shell=bash
# kmemleak around a test (the guest boots with kmemleak=on).

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
