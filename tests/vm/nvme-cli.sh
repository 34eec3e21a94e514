#!/bin/bash
# Host Managed Live Migration of the emulated controller driven by a host
# that is not ours (KTAP): nvme-cli's `nvme lm` plugin (Debian trixie's
# nvme-cli, scripts/build-nvme-cli.sh; run-vm.py copies it into the job as
# $NVME_CLI) on host b's PF, against the secondary controllers of VF2 (S,
# the source) and VF3 (D), which no other suite of the boot uses. Every
# case checks the status nvme-cli reports against what NVMe 2.1 (and
# Documentation/nvme-vfio/emulated-hmlm.rst) says, not just its exit code.
#
# S and D are never bound before this suite, so their controllers are
# disabled (CC.EN 0) with no queues: S's state (vendor format only, CSVI 0:
# nvme-cli's migration-send cannot set CSVI) carries registers and no
# admin or I/O queue, so loading it into D cannot make D DMA anywhere. The
# CDQ nvme-cli creates is a buffer nvme-cli frees when it exits (its own
# --consent text says so): logging is started only while the PF's IOMMU
# domain translates strictly, so the controller's marker write faults
# rather than landing in memory the PF no longer owns.
#
# Left as found: S and D resumed, unbound and reset (FLR), the CDQ deleted.
. "$(dirname "${BASH_SOURCE[0]}")/lib/ktap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/lib/sriov.sh"
. "$(dirname "${BASH_SOURCE[0]}")/lib/kernel-log.sh"
NVME=${NVME_CLI:-}

CASES="suspend:check_suspend
	suspend_of_suspended_succeeds:check_second_suspend
	get_state_twice_identical:check_get_state
	set_state_into_other_vf:check_set_state
	destination_vf_works:check_destination_works
	unknown_cntlid_rejected:check_unknown_cntlid
	create_cdq:check_create_cdq
	cdq_features:check_cdq_features
	track_send:check_track_send
	delete_cdq:check_delete_cdq
	resume_of_running_fails:check_resume_running"

# --- nvme lm, and the status it reports -----------------------------------

# The NVMe status (SCT << 8 | SC, as 0x%03x) in nvme-cli's output on stdin:
# its "NVMe status: NAME(0xVALUE)" line (VALUE may carry DNR and More),
# "error" for a failure without one (an ioctl error, bad arguments), 0x000
# when neither and exit status $1 is 0. migration-recv exits 0 even when the
# command failed: the output, not the exit status, is what counts.
lm_status() {
	local line re='^NVMe status: .*\((0x[0-9a-fA-F]+)\)$'
	while IFS= read -r line; do
		if [[ $line =~ $re ]]; then
			printf '0x%03x\n' $((BASH_REMATCH[1] & 0x7ff))
			return
		fi
		case $line in ERROR:* | Error:*) echo error; return ;; esac
	done
	if [ "$1" -eq 0 ]; then echo 0x000; else echo error; fi
}

# lm COMMAND ARGS...: `nvme lm COMMAND $PF_DEV ARGS...`; its output in
# $D/out (and shown), LM_STATUS its status (lm_status). Its standard output
# is line-buffered, so what it printed survives it aborting.
lm() {
	local rc
	{ stdbuf -oL "$NVME" lm "$1" "$PF_DEV" "${@:2}" >"$D/out" 2>&1; } 2>/dev/null
	rc=$?
	echo "nvme lm $* -> exit $rc"
	# nvme-cli 2.13's migration-send closes its --input-file twice (fclose,
	# then the cleanup attribute of the FILE pointer) and glibc aborts it
	# on the way out, after the command completed and its result was
	# printed: the result is judged from what it printed.
	if [ "$1" = migration-send ] && [ "$rc" -eq 134 ] &&
		grep -q '^free(): double free detected' "$D/out"; then
		echo "  (nvme-cli aborted after the command: it closes its input file twice)"
		rc=0
	fi
	LM_STATUS=$(lm_status "$rc" <"$D/out")
	echo "  status $LM_STATUS"
	head -n 6 "$D/out" | sed 's/^/  /'
}

# expect STATUS WHAT: the last lm reported STATUS.
expect() {
	[ "$LM_STATUS" = "$1" ] || fail "$2: status $LM_STATUS, expected $1" || return
}

# expect_ok WHAT ERE: the last lm succeeded and said so (a line matching ERE).
expect_ok() {
	expect 0x000 "$1" || return
	grep -Eq "$2" "$D/out" || fail "$1: no '$2' in nvme-cli's output" || return
}

# Completion dword 0 of a Get Controller State, bit 0 (CSUP): the controller
# is suspended. nvme-cli prints it as "CDW0: 0x1: Controller Suspended".
csup_of_last() {
	grep -q '^CDW0: 0x[0-9a-f]*: Controller Suspended$' "$D/out" && return 0
	grep -q '^CDW0: 0x[0-9a-f]*: Controller NOT Suspended$' "$D/out" && return 1
	fail "no CDW0 line in migration-recv's output"; return 2
}

# suspended CNTLID: whether the controller is suspended, as one Get
# Controller State (the header) tells it twice: CSUP in completion dword 0
# and CSATTR bit 0 in the data. 0 if suspended, 1 if not, 2 (with the
# reason on stderr) if the read failed or the two disagree.
suspended() {
	local csup csattr
	lm migration-recv -s 0 -c "$1" -n 12 -f "$D/hdr" >/dev/null
	expect 0x000 "Get Controller State of $1" || return 2
	csup_of_last
	csup=$?
	[ "$csup" -le 1 ] || return 2
	csattr=$(($(le "$D/hdr" 2 1) & 1))
	[ "$csup" -ne "$csattr" ] ||
		{ fail "controller $1: CSUP $((1 - csup)) but CSATTR bit 0 $csattr"; return 2; }
	return "$csup"
}

# expect_suspended CNTLID yes|no WHEN
expect_suspended() {
	local st
	suspended "$1"
	st=$?
	case $2:$st in
	yes:0 | no:1) return 0 ;;
	yes:1) fail "controller $1 not suspended $3 (CSUP and CSATTR clear)" ;;
	no:0) fail "controller $1 suspended $3 (CSUP and CSATTR set)" ;;
	*) return 1 ;;
	esac
}

# get_state CNTLID CSVI CSUUIDI FILE: the whole state, its size from the
# header. nvme-cli's NUMD is 0's based (it transfers NUMD + 1 dwords) but it
# writes only NUMD dwords to the file, so NUMD = size / 4 puts exactly the
# state in FILE (the extra dword read lies past the state's end: zeros).
get_state() {
	local c=$1 csvi=$2 csuuidi=$3 f=$4 size
	lm migration-recv -s 0 -c "$c" -V "$csvi" -U "$csuuidi" -n 12 -f "$f" || return
	expect 0x000 "Get Controller State header of $c" || return
	size=$(state_size "$f") || return
	lm migration-recv -s 0 -c "$c" -V "$csvi" -U "$csuuidi" -n $((size / 4)) -f "$f" || return
	expect 0x000 "Get Controller State of $c ($size bytes)" || return
	[ "$(stat -c %s "$f")" -eq "$size" ] ||
		fail "$f: $(stat -c %s "$f") bytes, the header says $size" || return
}

# --- the controller state (NVMe 2.1 figure 342, little endian) -------------

le() { # FILE OFFSET BYTES: unsigned little-endian integer
	local v=0 i b
	read -ra b <<<"$(od -An -tu1 -v -j "$2" -N "$3" "$1")"
	for ((i = $3 - 1; i >= 0; i--)); do v=$((v << 8 | b[i])); done
	echo "$v"
}

# The header's size of the whole state: 48 + 4 * (NVMECSS + VSS), whose
# high 64 bits must be zero.
state_size() {
	local f=$1
	[ "$(le "$f" 24 8)" -eq 0 ] && [ "$(le "$f" 40 8)" -eq 0 ] ||
		fail "$f: NVMECSS or VSS beyond 64 bits" || return
	echo $((48 + 4 * ($(le "$f" 16 8) + $(le "$f" 32 8))))
}

# check_header FILE CSVI CSUUIDI: VER 0, CSATTR bit 0 (suspended) set and
# bits 7:1 clear, bytes 15:3 zero; NVMECSS 0 without CSVI; VSS 0 without
# CSUUIDI, else the vendor section ("QNLM", version 2, its length = VSS).
check_header() {
	local f=$1 csvi=$2 csuuidi=$3 nvmecss vss
	[ "$(le "$f" 0 2)" -eq 0 ] || fail "VER $(le "$f" 0 2), expected 0" || return
	[ "$(le "$f" 2 1)" -eq 1 ] || fail "CSATTR $(le "$f" 2 1), expected 1 (suspended)" || return
	[ -z "$(od -An -tx1 -j 3 -N 13 "$f" | tr -d ' 0\n')" ] ||
		fail "header bytes 15:3 not zero" || return
	nvmecss=$(le "$f" 16 8) vss=$(le "$f" 32 8)
	echo "$f: VER 0, CSATTR 1 (suspended), NVMECSS $nvmecss, VSS $vss dwords"
	[ "$csvi" -ne 0 ] || [ "$nvmecss" -eq 0 ] || fail "NVMECSS $nvmecss with CSVI 0" || return
	if [ "$csuuidi" -eq 0 ]; then
		[ "$vss" -eq 0 ] || fail "VSS $vss with CSUUIDI 0" || return
		return 0
	fi
	local v=$((48 + 4 * nvmecss))
	[ "$(le "$f" "$v" 4)" -eq $((0x4d4c4e51)) ] || fail "vendor section: no QNLM magic" || return
	[ "$(le "$f" $((v + 4)) 2)" -eq 2 ] || fail "vendor section: version $(le "$f" $((v + 4)) 2)" || return
	[ "$(le "$f" $((v + 8)) 4)" -eq $((4 * vss)) ] ||
		fail "vendor section: length $(le "$f" $((v + 8)) 4), VSS says $((4 * vss))" || return
}

# --- cases --------------------------------------------------------------------

# Migration Send, Suspend (SEL 0, STYPE 1) of S: success, and S is then
# suspended (CSUP and CSATTR).
check_suspend() {
	lm migration-send -s 0 -t 1 -c "$SCID_S"
	expect_ok "Suspend of $SCID_S" '^Migration Send \(Suspend\) Successful$' || return
	expect_suspended "$SCID_S" yes "after Suspend"
}

# NVMe 2.1 p. 376: suspending a suspended controller completes successfully;
# Controller Suspended (139h) is not a Migration Send status.
check_second_suspend() {
	lm migration-send -s 0 -t 1 -c "$SCID_S"
	expect_ok "second Suspend of $SCID_S" '^Migration Send \(Suspend\) Successful$' || return
	expect_suspended "$SCID_S" yes "after the second Suspend"
}

# Get Controller State of the suspended S twice: the same bytes; the header
# (by our parse and by nvme-cli's) says suspended; CSUP set both times. The
# vendor-format state (CSUUIDI 1) is what set_state loads into D; S has no
# I/O queue (version-0 state: NIOSQ = NIOCQ = 0) and was never enabled
# (vendor CC.EN 0): a state that cannot make D DMA.
check_get_state() {
	local i
	for i in 1 2; do
		get_state "$SCID_S" 0 1 "$D/state$i" || return
		csup_of_last || fail "read $i: CSUP clear" || return
	done
	cmp "$D/state1" "$D/state2" || fail "two Get Controller State of a suspended controller differ" || return
	echo "two reads: $(stat -c %s "$D/state1") bytes each, identical"
	check_header "$D/state1" 0 1 || return
	[ $(($(le "$D/state1" $((48 + 12)) 4) & 1)) -eq 0 ] ||
		fail "S's vendor state has CC.EN set: S was enabled" || return
	# nvme-cli's own parse of the header.
	lm migration-recv -s 0 -c "$SCID_S" -U 1 -n 11 -H
	expect 0x000 "Get Controller State (human-readable)" || return
	grep -Eq '^Controller State Attributes \(CSATTR\) +: 0x1$' "$D/out" &&
		grep -q '\[0:0\] : 0x1 Controller Suspended' "$D/out" ||
		fail "nvme-cli does not parse CSATTR as suspended" || return
	# Version 0 (CSVI 1): 48-byte header, 8-byte NVMe state, no queues.
	get_state "$SCID_S" 1 0 "$D/v0" || return
	check_header "$D/v0" 1 0 || return
	[ "$(stat -c %s "$D/v0")" -eq 56 ] && [ "$(le "$D/v0" 50 2)" -eq 0 ] &&
		[ "$(le "$D/v0" 52 2)" -eq 0 ] ||
		fail "S has I/O queues (NIOSQ $(le "$D/v0" 50 2), NIOCQ $(le "$D/v0" 52 2))" || return
}

# Set Controller State (SEL 2, SEQIND 3: the whole state, CSUUIDI 1) of S's
# state into D, suspended first: success; D's state is then S's, byte for
# byte; Resume of D succeeds and D is no longer suspended.
check_set_state() {
	[ -s "$D/state1" ] || fail "no source state (get_state_twice_identical failed)" || return
	lm migration-send -s 0 -t 1 -c "$SCID_D"
	expect_ok "Suspend of $SCID_D" '^Migration Send \(Suspend\) Successful$' || return
	local n=$(($(stat -c %s "$D/state1") / 4))
	lm migration-send -s 2 -S 3 -U 1 -c "$SCID_D" -n "$n" -f "$D/state1"
	expect_ok "Set Controller State of $SCID_D" '^Migration Send \(Set Controller State\) Successful$' ||
		return
	get_state "$SCID_D" 0 1 "$D/state_d" || return
	cmp "$D/state1" "$D/state_d" || fail "D's state after Set Controller State is not S's" || return
	echo "D's state after Set Controller State: S's, byte for byte"
	lm migration-send -s 1 -c "$SCID_D"
	expect_ok "Resume of $SCID_D" '^Migration Send \(Resume\) Successful$' || return
	expect_suspended "$SCID_D" no "after Resume"
}

# D after the load and Resume is an ordinary controller: the kernel's nvme
# driver binds it, it answers Identify as its own CNTLID, and a Read on its
# own I/O queue (passthrough on its controller device: multipath gives a
# shared namespace no per-path device) returns LBA 0 of NSID 1 as the
# namespace (its multipath head) has it.
check_destination_works() {
	bind_driver "$D_BDF" nvme || return
	D_DEV=$(pci_nvme_dev "$D_BDF") || return
	wait_ctrl_live "$D_DEV" || return
	local got ns head lbs
	got=$(cat "/sys/class/nvme/${D_DEV#/dev/}/cntlid")
	[ "$got" = "$SCID_D" ] || fail "$D_DEV: cntlid $got, expected $SCID_D" || return
	"$NVME" id-ctrl "$D_DEV" >"$D/idctrl" 2>&1 || fail "nvme id-ctrl $D_DEV: $(tail -n1 "$D/idctrl")" || return
	grep -Eq "^cntlid +: 0x$(printf '%x' "$SCID_D")$" "$D/idctrl" ||
		fail "Identify through $D_DEV: $(grep -E '^cntlid' "$D/idctrl")" || return
	echo "$D_BDF is $D_DEV, cntlid $got (Identify on its admin queue agrees)"
	ns=$(ns_sysfs "$D_DEV" 1) || return
	head=$(ns_head "$ns") && lbs=$(cat "$ns/queue/logical_block_size") || return
	"$NVME" io-passthru "$D_DEV" -O 2 -n 1 -l "$lbs" -r -b >"$D/blk_d" 2>"$D/rd" ||
		fail "Read through $D_DEV: $(tail -n1 "$D/rd")" || return
	dd if="$head" of="$D/blk_ns" bs="$lbs" count=1 iflag=direct status=none ||
		fail "dd from $head failed" || return
	[ "$(stat -c %s "$D/blk_d")" -eq "$lbs" ] || fail "Read through $D_DEV: short" || return
	cmp "$D/blk_d" "$D/blk_ns" || fail "LBA 0 read through $D_DEV differs from $head's" || return
	echo "NSID 1 LBA 0 ($lbs bytes) read through $D_DEV's I/O queue: as $head has it"
}

# Migration Send and Migration Receive naming a controller that is not a
# secondary controller of this PF (one not listed, and the PF's own):
# Invalid Controller Identifier (11Fh).
check_unknown_cntlid() {
	local bad pcid c
	bad=$(secondary_list "$PF_DEV" | awk 'BEGIN { c = 127 } $1 == c { c++ } END { print c }')
	pcid=$(pf_cntlid "$PF_DEV") || return
	for c in "$bad" "$pcid"; do
		lm migration-send -s 0 -t 1 -c "$c"
		expect 0x11f "Suspend of CNTLID $c" || return
		lm migration-recv -s 0 -c "$c" -n 11
		expect 0x11f "Get Controller State of CNTLID $c" || return
	done
}

# Controller Data Queue, Create (SEL 0, QT 0: a User Data Migration Queue)
# for S's controller: success and a CDQID (1 to 16).
check_create_cdq() {
	lm create-cdq -c "$SCID_S" -s "$CDQ_DWORDS" -q 0 --consent
	expect_ok "Create CDQ for $SCID_S" '^Create CDQ Successful: CDQID=0x[0-9a-f]{4}$' || return
	CDQID=$(($(sed -n 's/^Create CDQ Successful: CDQID=//p' "$D/out")))
	[ "$CDQID" -ge 1 ] && [ "$CDQID" -le 16 ] || fail "CDQID $CDQID out of range" || return
	echo "CDQ $CDQID: $((CDQ_DWORDS / 8)) entries for controller $SCID_S"
	# One UDMQ per controller (MCUDMQ 1): a second is an invalid CQS,
	# Invalid Field.
	lm create-cdq -c "$SCID_S" -s "$CDQ_DWORDS" -q 0 --consent
	expect 0x002 "second CDQ for $SCID_S" || return
}

# get_cdq ID: HP and TPT of CDQ ID (Get Features 21h) into CDQ_HP, CDQ_TPT.
# The data is the 512-byte Controller Data Queue data structure (NVMe 2.1
# Figure 427), bytes 511:8 reserved. nvme-cli 2.13's get-cdq gives the
# controller 8 bytes (libnvme's struct nvme_lm_ctrl_data_queue_fid_data),
# which a conforming controller overruns: the data is read with
# admin-passthru and 512 bytes instead.
get_cdq() {
	local rc
	"$NVME" admin-passthru "$PF_DEV" --opcode=0x0a --cdw10=0x21 --cdw11="$1" \
		--data-len=512 --read --raw-binary >"$D/cdqf" 2>"$D/out"
	rc=$?
	LM_STATUS=$(lm_status "$rc" <"$D/out")
	echo "nvme admin-passthru Get Features 21h CDQ $1 -> exit $rc, status $LM_STATUS"
	expect 0x000 "Get Features 21h of CDQ $1" || return
	[ "$(stat -c %s "$D/cdqf")" = 512 ] ||
		fail "Get Features 21h: $(stat -c %s "$D/cdqf") bytes, expected 512" || return
	[ -z "$(tail -c +9 "$D/cdqf" | tr -d '\0')" ] ||
		fail "Get Features 21h: reserved bytes 511:8 not zero" || return
	CDQ_HP=$(le "$D/cdqf" 0 4)
	CDQ_TPT=$(le "$D/cdqf" 4 4)
}

# Set/Get Features, Controller Data Queue (FID 21h): a new empty queue has
# its head at 0; a head and a tail-pointer trigger set read back; a head
# past the last entry written (none yet) or beyond the ring is Invalid
# Field; an unknown CDQID is Invalid Controller Data Queue (137h).
check_cdq_features() {
	[ -n "${CDQID:-}" ] || fail "no CDQ (create_cdq failed)" || return
	get_cdq "$CDQID" || return
	[ "$CDQ_HP" -eq 0 ] || fail "new CDQ: head $CDQ_HP" || return
	# TPT 3: the two markers track_send may have the controller post leave
	# the tail at 2 at most, so the trigger never fires.
	lm set-cdq -C "$CDQID" -H 0 -T 3
	expect_ok "Set Features 21h (HP 0, TPT 3)" '^Success\. Head Pointer: 0$' || return
	get_cdq "$CDQID" || return
	[ "$CDQ_HP" -eq 0 ] && [ "$CDQ_TPT" -eq 3 ] ||
		fail "after HP 0 TPT 3: HP $CDQ_HP TPT $CDQ_TPT" || return
	lm set-cdq -C "$CDQID" -H 1
	expect 0x002 "Set Features 21h, HP past the tail" || return
	lm set-cdq -C "$CDQID" -H $((CDQ_DWORDS / 8))
	expect 0x002 "Set Features 21h, HP beyond the ring" || return
	lm set-cdq -C 9 -H 0
	expect 0x137 "Set Features 21h, CDQ 9" || return
	lm get-cdq -C 9
	expect 0x137 "Get Features 21h, CDQ 9" || return
}

# Track Send, Log User Data Changes (SEL 0) on S's CDQ: start while S is
# suspended is Controller Suspended (139h); S resumed, start and stop
# succeed, and stopping again (logging stopped) succeeds too; an unknown
# CDQID is 137h. What the controller writes into the ring cannot be seen:
# nvme-cli freed it.
check_track_send() {
	[ -n "${CDQID:-}" ] || fail "no CDQ (create_cdq failed)" || return
	lm track-send -s 0 -C "$CDQID" --start
	expect 0x139 "Track Send start, controller suspended" || return
	lm track-send -s 0 -C 9 --start
	expect 0x137 "Track Send start, CDQ 9" || return
	lm migration-send -s 1 -c "$SCID_S"
	expect_ok "Resume of $SCID_S" '^Migration Send \(Resume\) Successful$' || return
	local t
	t=$(cat "/sys/bus/pci/devices/$PF/iommu_group/type" 2>/dev/null)
	[ "$t" = DMA ] || fail "PF IOMMU domain '$t', not DMA (strict): a marker write could reach freed memory; not starting" || return
	kernel_log_mark
	lm track-send -s 0 -C "$CDQID" --start
	expect_ok "Track Send start" '^Track Send \(Log User Data Changes\) Successful$' || return
	# Where the marker write went (diagnostic only).
	suite_log | grep -i -m2 dmar
	lm track-send -s 0 -C "$CDQID" --stop
	expect_ok "Track Send stop" '^Track Send \(Log User Data Changes\) Successful$' || return
	lm track-send -s 0 -C "$CDQID" --stop
	expect_ok "Track Send stop, not logging" '^Track Send \(Log User Data Changes\) Successful$' || return
}

# Controller Data Queue, Delete (SEL 1): success; then the CDQID is unknown:
# deleting it again and Get Features 21h are 137h.
check_delete_cdq() {
	[ -n "${CDQID:-}" ] || fail "no CDQ (create_cdq failed)" || return
	lm delete-cdq -C "$CDQID"
	expect_ok "Delete CDQ $CDQID" "^Delete CDQ Successful: CDQID=0x0*$(printf '%x' "$CDQID")\$" || return
	local id=$CDQID
	CDQID=
	lm delete-cdq -C "$id"
	expect 0x137 "second Delete of CDQ $id" || return
	lm get-cdq -C "$id"
	expect 0x137 "Get Features 21h of deleted CDQ $id" || return
}

# Resume (SEL 1) of a controller that is not suspended: Controller Not
# Suspended (13Ah): S (resumed), and D, live under the nvme driver, which
# goes on working.
check_resume_running() {
	expect_suspended "$SCID_S" no "before its Resume" || return
	lm migration-send -s 1 -c "$SCID_S"
	expect 0x13a "Resume of running $SCID_S" || return
	[ -n "${D_DEV:-}" ] || fail "D not bound to nvme (destination_vf_works failed)" || return
	lm migration-send -s 1 -c "$SCID_D"
	expect 0x13a "Resume of $SCID_D, live under nvme" || return
	"$NVME" id-ctrl "$D_DEV" >/dev/null 2>&1 || fail "$D_DEV stopped answering after the refused Resume" || return
	[ "$(cat "/sys/class/nvme/${D_DEV#/dev/}/state")" = live ] || fail "$D_DEV not live" || return
}

# --- helpers of the destination check ---------------------------------------

# The sysfs directory of namespace NSID $2 on controller $1's own path,
# waiting for the namespace scan (it may end after the controller is live).
ns_sysfs() {
	local c=${1#/dev/} b i
	for i in $(seq 100); do
		for b in /sys/class/nvme/"$c"/nvme*n*; do
			[ "$(cat "$b/nsid" 2>/dev/null)" = "$2" ] || continue
			echo "$b"
			return 0
		done
		sleep 0.1
	done
	fail "$1: no namespace $2 after 10 s"
}

# The block device of the namespace whose path is sysfs directory $1: the
# multipath head nvme<subsystem>n<ns> of a path nvme<subsystem>c<ctrl>n<ns>.
ns_head() {
	local n=${1##*/} re='^nvme([0-9]+)c[0-9]+n([0-9]+)$'
	[[ $n =~ $re ]] && n=nvme${BASH_REMATCH[1]}n${BASH_REMATCH[2]}
	[ -b "/dev/$n" ] || fail "/dev/$n: no block device" || return
	echo "/dev/$n"
}

# --- setup and restore --------------------------------------------------------

CDQ_DWORDS=32 # 4 entries of 32 bytes

# pci_reset BDF: function-level reset through sysfs (no driver bound):
# controller disabled, suspension and any partial Set State dropped.
pci_reset() {
	[ ! -e "/sys/bus/pci/devices/$1/reset" ] || echo 1 >"/sys/bus/pci/devices/$1/reset" ||
		fail "$1: reset failed"
}

setup() {
	[ -n "$NVME" ] || fail "nvme-cli not built: NVME_VFIO_NVME_CLI unset (scripts/build-nvme-cli.sh)" || return
	[ -x "$NVME" ] || fail "$NVME: not executable" || return
	"$NVME" lm help >/dev/null 2>&1 || fail "$NVME has no lm plugin" || return
	PF=$(pf_bdf b) || return 1
	PF_DEV=$(pci_nvme_dev "$PF") || return 1
	if [ "$(cat "/sys/bus/pci/devices/$PF/sriov_numvfs")" -lt 4 ]; then
		sriov_setup 4 b || return 1
	fi
	S_BDF=$(vf_bdf "$PF" 2) && D_BDF=$(vf_bdf "$PF" 3) || return 1
	SCID_S=$(vf_scid "$PF_DEV" 3) && SCID_D=$(vf_scid "$PF_DEV" 4) || return 1
	local vf
	for vf in "$S_BDF" "$D_BDF"; do
		[ -z "$(bound_driver "$vf")" ] || fail "$vf is bound to $(bound_driver "$vf")" || return
		pci_reset "$vf" || return
	done
	"$NVME" version | head -n2 | tr '\n' ' '
	echo
	echo "PF $PF ($PF_DEV); S = VF2 $S_BDF (CNTLID $SCID_S), D = VF3 $D_BDF (CNTLID $SCID_D)"
}

restore() {
	[ -z "${CDQID:-}" ] || "$NVME" lm delete-cdq "$PF_DEV" -C "$CDQID" >/dev/null 2>&1
	local c
	for c in "$SCID_S" "$SCID_D"; do
		"$NVME" lm migration-send "$PF_DEV" -s 1 -c "$c" >/dev/null 2>&1
	done
	bind_driver "$D_BDF" "" && pci_reset "$D_BDF" && pci_reset "$S_BDF"
}

main() {
	D=$(mktemp -d)
	ktap_begin nvme_cli_lm "$(wc -w <<<"$CASES")"
	local errf=$D/setup.err c
	setup >"$D/setup.out" 2>"$errf"
	local rc=$?
	sed 's/^/# /' "$D/setup.out"
	if [ $rc -ne 0 ]; then
		for c in $CASES; do ktap_not_ok "${c%%:*}" "setup: $(tail -n1 "$errf")"; done
		exit 1
	fi
	for c in $CASES; do
		ktap_check "${c%%:*}" "${c#*:}"
	done
	restore >/dev/null 2>"$errf" || { echo "# restore: $(tail -n1 "$errf")"; KTAP_FAILED=$((KTAP_FAILED + 1)); }
	rm -rf "$D"
	ktap_end
}

# Sourced (the mutation check of README/testing.rst), only the functions.
[ "${BASH_SOURCE[0]}" != "$0" ] || main "$@"
