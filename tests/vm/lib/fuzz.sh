# shellcheck shell=bash
# What tests/vm/resume-fuzz.sh and tests/vm/fuzz.sh (make fuzz) share.
# Sourced.
#
# The driver's known validation gaps: fields of the controller state that
# nvme_vfio_pci does not check although the device does. nvme-lm
# fuzz-resume --strict-gaps fails on a stream the driver passed and the
# device refused that changed only fields the driver checks itself, unless
# one of them is listed here. Remove a field when the driver checks it.
# (The two the first runs found, the state header's VER and the reserved
# bytes 7:6 of the version-0 state, are checked since.)
KNOWN_GAPS=()

# The options that make fuzz-resume strict about gaps, known ones aside.
# shellcheck disable=SC2034 # used by the scripts that source this
FUZZ_GAP_ARGS=(--strict-gaps)
for _g in "${KNOWN_GAPS[@]}"; do FUZZ_GAP_ARGS+=(--known-gap "$_g"); done
unset _g
