# shellcheck shell=bash
# What tests/vm/resume-fuzz.sh, tests/vm/media-fuzz.sh and tests/vm/fuzz.sh
# (make fuzz) share. Sourced; the checks need lib/ktap.sh and
# lib/kernel-log.sh, and read the tool's output in $OUT (exit status $RC).
#
# The driver's known validation gaps: fields of the controller state that
# nvme_vfio_pci does not check although the device does. nvme-lm
# fuzz-resume --strict-gaps fails on a stream the driver passed and the
# device refused that changed only fields the driver checks itself, unless
# one of them is listed here. Remove a field when the driver checks it.
# (The two the first runs found, the state header's VER and the reserved
# bytes 7:6 of the version-0 state, are checked since.)
KNOWN_GAPS=()

# The options of every fuzz-resume run here: I/O through the destination
# every 500 inputs, 60 s for one input, strict about gaps (known ones
# aside).
# shellcheck disable=SC2034 # used by the scripts that source this
FUZZ_ARGS=(--io-every 500 --timeout 60 --strict-gaps)
for _g in "${KNOWN_GAPS[@]}"; do FUZZ_ARGS+=(--known-gap "$_g"); done
unset _g

# media_material DIR: the material of media fuzzing, on the test bed of
# lib/media.sh (media_setup done): host a's VF1 and host b's VF1 opted in,
# a media migration of NSID 3 between them (1 MiB written before it, over
# what was there) whose stream is kept in DIR/media.stream; the tool's
# report in DIR/capture.
media_material() {
	media "$A1" 1 && media "$B1" 1 || return 1
	"$NVME_LM" media-migrate --vf-a "$CDEV_A1" --vf-b "$CDEV_B1" --nsid 3 --keep --rounds 1 \
		--rate 0 --prefill-mib 1 --save "$1/media.stream" >"$1/capture" 2>&1 ||
		fail "capturing a media stream: $(grep -m1 '^nvme-lm: error' "$1/capture" || tail -n1 "$1/capture")"
}

# fuzz_suite_run DUMP ARGS...: a KTAP suite's fuzz-resume run (ARGS: the
# VFs or the material, --seed, --inputs; INPUTS bounds its time), inputs
# with an unexpected outcome kept in the job directory's DUMP/; its output
# in $OUT and exit status in $RC; then the suite's first three cases.
fuzz_suite_run() {
	local dump=$1 t0=$SECONDS
	shift
	OUT=$(mktemp)
	timeout -k 10 $((INPUTS + 900)) "$NVME_LM" fuzz-resume "$@" "${FUZZ_ARGS[@]}" \
		--dump "${NVME_VFIO_JOB:-/tmp}/$dump" >"$OUT" 2>&1
	RC=$?
	echo "# fuzz-resume: $((SECONDS - t0)) s, exit $RC"
	ktap_check real_streams_load check_real_streams
	ktap_check inputs_refused_or_loaded check_inputs
	ktap_check destination_usable check_destination
}

# verdict NAME: the tool's verdict NAME (a line "verdict NAME: ok").
verdict() {
	local v
	v=$(grep "^verdict $1: " "$OUT" | tail -n1)
	[ -n "$v" ] || fail "no verdict $1: the fuzzer ended early (exit $RC): $(tail -n1 "$OUT")" || return
	[ "${v#verdict "$1": }" = ok ] || fail "${v#verdict "$1": }"
}

check_real_streams() {
	grep -E "^(destination|real stream) " "$OUT"
	verdict real_streams_load
}

check_inputs() {
	sed -n '/^seed /,/^verdict /p' "$OUT" | grep -v "^verdict "
	verdict inputs_refused_or_loaded
}

check_destination() {
	grep "^I/O checks" "$OUT"
	verdict destination_usable
}

check_log() {
	local log n m refused
	log=$(suite_log) || return
	n=$(grep -c "migration stream rejected" <<<"$log")
	m=$(grep -c "callbacks suppressed" <<<"$log")
	# Inputs the driver refused (each logs why): the tool's outcome counts.
	refused=$(grep -E "refused at (write|load): " "$OUT" | awk '{ s += $NF } END { print s + 0 }')
	echo "$n \"migration stream rejected\" lines for $refused inputs the driver refused," \
		"$m \"callbacks suppressed\""
	grep "migration stream rejected" <<<"$log" | sed 's/^\[[^]]*\] //; s/^[^ ]* [^ ]* //' |
		sort | uniq -c | sort -rn | head -n 40
	# A user writing bad streams must not flood the log: the driver's
	# refusals are rate-limited (per device), so far fewer lines than
	# refusals, and printk says how many it suppressed.
	if [ "$refused" -gt 100 ] && { [ "$n" -ge "$refused" ] || [ "$m" -eq 0 ]; }; then
		fail "the driver's refusals are not rate-limited: $n lines, $m suppressions for $refused refusals"
		return
	fi
	kernel_log_clean "possible recursive|kmemleak|Oops"
}
