# Media migration test bed, sourced by tests/vm/media.sh (the KTAP suite),
# tests/vm/bench.sh (its benchmarks) and tests/vm/qemu-migrate.sh (media,
# pf_ns_blockdev, same_ns); needs lib/sriov.sh, and fail
# (lib/ktap.sh's, or the one below).
# shellcheck shell=bash
#
# Hosts a and b, each an SR-IOV PF of its own subsystem; VF n (VFN, 1-based)
# of either host has the private NSID n + 1 (256 MiB). media_setup binds VF0
# and VF1 of both hosts to nvme_vfio_pci (A0 A1 B0 B1, their cdevs CDEV_A0
# ...) with ONLY their private namespace attached (the PFs have it too);
# media_teardown puts NSID 1 back and unbinds them.

declare -F fail >/dev/null || fail() { echo "$*" >&2; return 1; }

media_setup() {
	PF_A=$(pf_bdf a) && PF_B=$(pf_bdf b) || return 1
	[ "$(cat "/sys/bus/pci/devices/$PF_A/sriov_numvfs")" -ge 2 ] || sriov_setup 4 a || return 1
	[ "$(cat "/sys/bus/pci/devices/$PF_B/sriov_numvfs")" -ge 2 ] || sriov_setup 4 b || return 1
	DEV_A=$(pci_nvme_dev "$PF_A") && DEV_B=$(pci_nvme_dev "$PF_B") || return 1
	media_online "$PF_A" "$DEV_A" && media_online "$PF_B" "$DEV_B" || return 1
	PCID_A=$(pf_cntlid "$DEV_A") && PCID_B=$(pf_cntlid "$DEV_B") || return 1
	modprobe nvme_vfio_pci || fail "modprobe nvme_vfio_pci failed" || return
	media_bind || return 1
	only_private
}

# media_online PF PF_DEV: VF0 and VF1 of PF unbound and their secondary
# controllers online with resources, whatever an earlier suite left (a PF
# controller reset takes them offline: their CAP reads 0 and a driver
# probing them finds no migration).
media_online() {
	local pf=$1 dev=$2 i vf scid
	for i in 0 1; do
		vf=$(vf_bdf "$pf" "$i") && bind_driver "$vf" "" || return 1
		scid=$(vf_scid "$dev" $((i + 1))) && online_vf "$dev" "$scid" || return 1
	done
}

# media_bind: VF0 and VF1 of both hosts bound to nvme_vfio_pci (the
# variables are for the scripts that source this file).
# shellcheck disable=SC2034
media_bind() {
	PF=$PF_B bind_vfs_vfio nvme-vfio-pci 2 || return 1
	B0=$VF0 CDEV_B0=$CDEV0 B1=$VF1 CDEV_B1=$CDEV1
	PF=$PF_A bind_vfs_vfio nvme-vfio-pci 2 || return 1
	A0=$VF0 CDEV_A0=$CDEV0 A1=$VF1 CDEV_A1=$CDEV1
}

# ctrl HOST: "DEV PCID" of host a or b.
ctrl() { if [ "$1" = a ]; then echo "$DEV_A $PCID_A"; else echo "$DEV_B $PCID_B"; fi; }

# only_private: VFN 1 and 2 of both hosts get their private namespace
# (attached to the VF's controller and the PF) and lose NSID 1; checks what
# the PF reports attached to each VF's controller. shared_again undoes it.
only_private() {
	local host dev pcid i scid got
	for host in a b; do
		read -r dev pcid <<<"$(ctrl $host)"
		for i in 1 2; do
			scid=$(vf_scid "$dev" "$i") || return 1
			got=$(ns_of_ctrl "$dev" "$scid")
			case " $got" in *" 1 "*) detach_ns "$dev" 1 "$scid" || return 1 ;; esac
			case " $got" in *" $((i + 1)) "*) ;; *) attach_ns "$dev" $((i + 1)) "$pcid,$scid" || return 1 ;; esac
			got=$(ns_of_ctrl "$dev" "$scid")
			[ "$got" = "$((i + 1)) " ] ||
				fail "host $host, secondary controller $scid: NSIDs '$got', expected only $((i + 1))" || return
		done
	done
}

shared_again() {
	local host dev pcid i scid
	for host in a b; do
		read -r dev pcid <<<"$(ctrl $host)"
		for i in 1 2; do
			scid=$(vf_scid "$dev" "$i") || return 1
			detach_ns "$dev" $((i + 1)) "$pcid,$scid" || return 1
			attach_ns "$dev" 1 "$scid" || return 1
		done
	done
}

# media VF 0|1: opts VF in or out (no attribute: a kernel without media
# migration, where off is all there is).
media() {
	local f=/sys/bus/pci/devices/$1/media_migration
	if [ ! -e "$f" ]; then
		[ "$2" = 0 ] && return 0
		fail "$1: no media_migration attribute: the kernel has no media migration" || return
	fi
	echo "$2" >"$f" || fail "$1: writing $2 to media_migration failed" || return
	[ "$(cat "$f")" = "$2" ] || fail "$1: media_migration reads '$(cat "$f")' after writing $2"
}

# The block device of NSID $2 on PF controller $1 (its own path's head).
pf_ns_blockdev() {
	local c=${1#/dev/} b n i re='^nvme([0-9]+)c[0-9]+n([0-9]+)$'
	for i in $(seq 50); do
		for b in /sys/class/nvme/"$c"/nvme*n*; do
			[ "$(cat "$b/nsid" 2>/dev/null)" = "$2" ] || continue
			n=${b##*/}
			[[ $n =~ $re ]] && n=nvme${BASH_REMATCH[1]}n${BASH_REMATCH[2]}
			[ -b "/dev/$n" ] && { echo "/dev/$n"; return 0; }
		done
		nvme ns-rescan "$1" >/dev/null 2>&1
		sleep 0.2
	done
	fail "$1: no block device for NSID $2 after 10 s"
}

# Reads block device $1 past the page cache.
direct() { dd if="$1" bs=1M iflag=direct status=none; }

# same_ns DEV-A DEV-B NSID [RANGES]: NSID on PF controller DEV-A and on
# DEV-B, byte for byte, through the PFs (checksums, then the first MiB that
# differs; no process substitution: the guest boot has no /dev/fd). With
# RANGES (a file of "SLBA NLB" lines: the commands in flight at a
# migration's stop, which run on the destination only when the source had
# not fetched them), bytes within those ranges may differ.
same_ns() {
	local a b sa sb ha hb i mib lbs res f kind x y
	a=$(pf_ns_blockdev "$1" "$3") && b=$(pf_ns_blockdev "$2" "$3") || return
	sa=$(blockdev --getsize64 "$a") && sb=$(blockdev --getsize64 "$b") || return
	[ "$sa" = "$sb" ] || fail "NSID $3: $sa bytes on $1 ($a), $sb on $2 ($b)" || return
	ha=$(direct "$a" | sha256sum | cut -c1-16) && hb=$(direct "$b" | sha256sum | cut -c1-16) || return
	if [ "$ha" = "$hb" ]; then
		echo "NSID $3: $sa bytes identical (SHA-256 $ha) on $1 ($a) and $2 ($b), read through the PFs"
		return 0
	fi
	if [ -n "${4:-}" ]; then
		lbs=$(blockdev --getss "$a")
		f=$(mktemp -d)
		mkfifo "$f/a" "$f/b"
		direct "$a" >"$f/a" &
		direct "$b" >"$f/b" &
		res=$(cmp -l "$f/a" "$f/b" | awk -v lbs="$lbs" -v ranges="$4" '
			BEGIN { while ((getline l < ranges) > 0) { split(l, r, " "); n++; s[n] = r[1]; e[n] = r[1] + r[2] } }
			{ lba = int(($1 - 1) / lbs); for (i = 1; i <= n; i++) if (lba >= s[i] && lba < e[i]) break
			  if (i > n) { print "outside", $1, lba; exit } ; k++ }
			END { if (i <= n || NR == 0) print "within", k + 0, n }')
		wait
		rm -rf "$f"
		read -r kind x y <<<"$res"
		if [ "$kind" = within ]; then
			echo "NSID $3: $sa bytes identical on $1 ($a) and $2 ($b) but for $x bytes within the $y LBA ranges of the commands in flight at the stop (they ran on the destination only; the client's model checked them there), read through the PFs"
			return 0
		fi
		fail "NSID $3: $1 ($a) and $2 ($b) differ at byte $x (LBA $y), outside the commands in flight at the stop"
		return
	fi
	mib=$((sa >> 20))
	for ((i = 0; i < mib; i++)); do
		[ "$(mib_sum "$a" $i)" = "$(mib_sum "$b" $i)" ] || break
	done
	fail "NSID $3: $1 ($a, $ha) and $2 ($b, $hb) differ, first in MiB $i of $mib"
}

# mib_sum DEV I: SHA-256 of MiB I of block device DEV.
mib_sum() { dd if="$1" bs=1M skip="$2" count=1 iflag=direct status=none | sha256sum | cut -c1-16; }

# ns_cmp NSID [RANGES]: the namespace on host a and on host b (same_ns).
ns_cmp() { same_ns "$DEV_A" "$DEV_B" "$@"; }

# ns_sum HOST NSID: SHA-256 of the namespace, read through the PF.
ns_sum() {
	local dev b
	read -r dev _ <<<"$(ctrl "$1")"
	b=$(pf_ns_blockdev "$dev" "$2") || return
	direct "$b" | sha256sum | cut -c1-16
}

# media_teardown: media_migration off, NSID 1 back, the four VFs unbound.
media_teardown() {
	local vf err
	err=$(mktemp)
	for vf in "$A0" "$A1" "$B0" "$B1"; do media "$vf" 0 >/dev/null 2>&1; done
	shared_again >/dev/null 2>"$err" || echo "# restore: $(tail -n1 "$err")"
	for vf in "$A0" "$A1" "$B0" "$B1"; do bind_driver "$vf" ""; done
	rm -f "$err"
}
