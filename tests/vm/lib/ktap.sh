# KTAP output for guest tests written in bash. Sourced.
# shellcheck shell=bash
#
#   ktap_begin NAME COUNT     header and plan
#   ktap_check NAME CMD...    run CMD; ok if it exits 0, else not ok with the
#                             last line it printed on stderr as the reason
#   ktap_skip NAME REASON
#   ktap_end                  exit status: 0 if every test passed

KTAP_N=0
KTAP_FAILED=0

ktap_begin() {
	echo "KTAP version 1"
	echo "# Subtest: $1"
	echo "1..$2"
}

ktap_ok() { KTAP_N=$((KTAP_N + 1)); echo "ok $KTAP_N $1"; }

ktap_not_ok() {
	KTAP_N=$((KTAP_N + 1)); KTAP_FAILED=$((KTAP_FAILED + 1))
	echo "not ok $KTAP_N $1 # $2"
	echo "FAILED: $1: $2" >&2
}

ktap_skip() { KTAP_N=$((KTAP_N + 1)); echo "ok $KTAP_N $1 # SKIP $2"; }

ktap_check() {
	local name=$1 out err rc
	shift
	out=$(mktemp) err=$(mktemp)
	# Not in a pipeline: the check runs in this shell and may set variables
	# for the checks after it.
	"$@" >"$out" 2>"$err"
	rc=$?
	sed 's/^/# /' "$out"
	if [ "$rc" -eq 0 ]; then
		ktap_ok "$name"
	else
		sed 's/^/# /' "$err"
		ktap_not_ok "$name" "$(tail -n1 "$err" | tr -d '\n' | cut -c1-200) (exit $rc)"
	fi
	cat "$err" >&2
	rm -f "$out" "$err"
	return "$rc"
}

ktap_end() { [ "$KTAP_FAILED" -eq 0 ]; }

fail() { echo "$*" >&2; return 1; }
