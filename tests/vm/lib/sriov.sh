# SR-IOV setup of QEMU's emulated NVMe PF inside the test VM. Sourced.
# shellcheck shell=bash
#
# QEMU starts with every flexible VQ/VI resource on the primary controller.
# Enabling VFs takes: release them from the primary (Virtualization
# Management, Primary Flexible, NR=0), reset the PF so that takes effect,
# keep the VFs away from host drivers (sriov_drivers_autoprobe=0), write
# sriov_numvfs, then per secondary controller: assign VQ and VI resources and
# set it online.

NVME_PCI_ID="1b36:0010"
# Resources per VF: tests/vm/run-vm.py states them (the job's environment).
VQ_PER_VF=${VQ_PER_VF:?set by tests/vm/run-vm.py}
VI_PER_VF=${VI_PER_VF:?set by tests/vm/run-vm.py}

# The emulated NVMe PF of host $1 (a, the default, b, or c: the PF without
# HMLM): the NVMe-class devices with SR-IOV capability, in PCI address order
# (tests/vm/run-vm.py puts host a behind the first root port, b behind the
# second, c behind the third).
pf_bdf() {
	local d host=${1:-a} i=0 want
	case $host in
	a) want=0 ;;
	b) want=1 ;;
	c) want=2 ;;
	*) fail "pf_bdf: no host '$host' (a, b or c)" || return ;;
	esac
	for d in /sys/bus/pci/devices/*; do
		[ -f "$d/sriov_totalvfs" ] || continue
		[ "$(cat "$d/class")" = 0x010802 ] || continue
		if [ "$i" -eq "$want" ]; then
			basename "$d"; return 0
		fi
		i=$((i + 1))
	done
	fail "no NVMe PF with SR-IOV capability for host $host found" || return
}

# /dev/nvmeN of the controller bound to PCI device $1. nvme-pci probes
# asynchronously: right after boot (make fuzz's first step) the controller
# may not be there yet, so wait up to 30 s for it.
pci_nvme_dev() {
	local n i
	for i in $(seq 300); do
		n=$(ls "/sys/bus/pci/devices/$1/nvme" 2>/dev/null | head -n1)
		[ -n "$n" ] && { echo "/dev/$n"; return 0; }
		sleep 0.1
	done
	fail "$1: no nvme controller bound after 30 s"
}

wait_ctrl_live() {
	local dev=$1 i state
	for i in $(seq 100); do
		state=$(cat "/sys/class/nvme/${dev#/dev/}/state" 2>/dev/null)
		[ "$state" = live ] && return 0
		sleep 0.1
	done
	fail "${dev}: state '$state', not live after 10 s" || return
}

pf_cntlid() {
	nvme id-ctrl "$1" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["cntlid"])'
}

# "scid vfn online nvq nvi" for every secondary controller of PF device $1,
# from the Secondary Controller List (a count byte, then 32-byte entries:
# SCID at 0, SCS at 4, VFN at 8, NVQ at 10, NVI at 12).
secondary_list() {
	local b n i o
	read -ra b <<<"$(nvme list-secondary "$1" -o binary | od -An -tu1 -v -w4096)"
	n=${b[0]:-0}
	for ((i = 0; i < n; i++)); do
		o=$((32 + 32 * i))
		echo "$((b[o] | b[o + 1] << 8)) $((b[o + 8] | b[o + 9] << 8)) $((b[o + 4] & 1))" \
			"$((b[o + 10] | b[o + 11] << 8)) $((b[o + 12] | b[o + 13] << 8))"
	done
}

# The secondary controller ID of VF number $2 (1-based) of PF device $1.
vf_scid() {
	secondary_list "$1" | awk -v vfn="$2" '$2 == vfn { print $1; found=1 } END { exit !found }' ||
		fail "no secondary controller with VFN $2" || return
}

release_primary_flexible() {
	local dev=$1 pcid
	pcid=$(pf_cntlid "$dev") || return 1
	nvme virt-mgmt "$dev" -c "$pcid" -r 0 -a 1 -n 0 >/dev/null || fail "release primary VQ failed" || return
	nvme virt-mgmt "$dev" -c "$pcid" -r 1 -a 1 -n 0 >/dev/null || fail "release primary VI failed" || return
	nvme reset "$dev" || fail "PF reset failed" || return
	wait_ctrl_live "$dev"
}

enable_vfs() {
	local pf=$1 n=$2
	echo 0 >"/sys/bus/pci/devices/$pf/sriov_drivers_autoprobe" || return 1
	echo 0 >"/sys/bus/pci/devices/$pf/sriov_numvfs" || return 1
	[ "$n" -gt 0 ] || return 0
	echo "$n" >"/sys/bus/pci/devices/$pf/sriov_numvfs" ||
		fail "writing $n to sriov_numvfs failed" || return
}

vf_bdf() {
	local l
	l=$(readlink "/sys/bus/pci/devices/$1/virtfn$2") || fail "VF $2 of $1 does not exist" || return
	basename "$l"
}

online_vf() {
	local dev=$1 scid=$2
	nvme virt-mgmt "$dev" -c "$scid" -a 7 >/dev/null || fail "scid $scid: offline failed" || return
	nvme virt-mgmt "$dev" -c "$scid" -r 0 -a 8 -n "$VQ_PER_VF" >/dev/null ||
		fail "scid $scid: assign $VQ_PER_VF VQ failed" || return
	nvme virt-mgmt "$dev" -c "$scid" -r 1 -a 8 -n "$VI_PER_VF" >/dev/null ||
		fail "scid $scid: assign $VI_PER_VF VI failed" || return
	nvme virt-mgmt "$dev" -c "$scid" -a 9 >/dev/null || fail "scid $scid: online failed" || return
}

# Bind PCI device $1 to driver $2 through driver_override ("" unbinds only).
bind_driver() {
	local bdf=$1 drv=$2 d=/sys/bus/pci/devices/$1
	if [ -e "$d/driver" ]; then
		echo "$bdf" >"$d/driver/unbind" || fail "$bdf: unbind failed" || return
	fi
	echo "$drv" >"$d/driver_override"
	[ -n "$drv" ] || return 0
	# Drivers are modules: load it if it is not registered yet.
	[ -d "/sys/bus/pci/drivers/$drv" ] || modprobe "$drv" ||
		fail "$bdf: modprobe $drv failed" || return
	echo "$bdf" >/sys/bus/pci/drivers_probe
	[ "$(basename "$(readlink "$d/driver")")" = "$drv" ] ||
		fail "$bdf: did not bind to $drv" || return
}

bound_driver() { basename "$(readlink "/sys/bus/pci/devices/$1/driver" 2>/dev/null)"; }

# Full setup: $1 VFs of host $2 (default a), each online with resources.
# Sets PF and PF_DEV.
sriov_setup() {
	local n=$1 i scid
	PF=$(pf_bdf "${2:-a}") || return 1
	PF_DEV=$(pci_nvme_dev "$PF") || return 1
	release_primary_flexible "$PF_DEV" || return 1
	enable_vfs "$PF" "$n" || return 1
	for i in $(seq "$n"); do
		scid=$(vf_scid "$PF_DEV" "$i") || return 1
		online_vf "$PF_DEV" "$scid" || return 1
	done
}

# The most bytes one command of PF device $1 (/dev/nvmeN) may transfer as
# the kernel applies it (from MDTS): its namespaces' max_hw_sectors_kb,
# which nvme core sets from the same limit as the admin queue's.
pf_max_transfer() {
	local c=${1##*/} f
	for f in /sys/class/nvme/"$c"/nvme*/queue/max_hw_sectors_kb; do
		[ -r "$f" ] && { echo $(($(cat "$f") * 1024)); return 0; }
	done
	fail "$c: no namespace queue limits in sysfs"
}

# Binds VF0..VF$2-1 of $PF to driver $1 and sets VF<i> (its address) and
# CDEV<i> (its VFIO cdev).
bind_vfs_vfio() {
	local drv=$1 n=$2 i vf d
	for i in $(seq 0 $((n - 1))); do
		vf=$(vf_bdf "$PF" "$i") || return 1
		bind_driver "$vf" "$drv" || return 1
		d=$(ls "/sys/bus/pci/devices/$vf/vfio-dev" 2>/dev/null | head -n1)
		[ -n "$d" ] || fail "$vf: no vfio cdev" || return
		eval "VF$i=$vf CDEV$i=/dev/vfio/devices/$d"
	done
}

# Attaches namespace $2 of PF device $1 to controllers $3 (comma separated
# IDs); detach_ns the reverse. The namespaces of a VF's controller change
# only through its PF (Namespace Attachment).
attach_ns() {
	nvme attach-ns "$1" -n "$2" -c "$3" >/dev/null ||
		fail "attach NSID $2 to controllers $3 of $1 failed" || return
}
detach_ns() {
	nvme detach-ns "$1" -n "$2" -c "$3" >/dev/null ||
		fail "detach NSID $2 from controllers $3 of $1 failed" || return
}

# The NSIDs attached to controller $2, as PF device $1 reports them
# (Identify CNS 12h for each allocated namespace), space separated.
ns_of_ctrl() {
	local dev=$1 ctrl=$2 nsid ids n i
	for nsid in $(nvme list-ns "$dev" --all | sed -n 's/^\[ *[0-9]*\]:0x//p'); do
		nsid=$((16#$nsid))
		# The Controller List: a 16-bit count, then 16-bit IDs.
		read -ra ids <<<"$(nvme list-ctrl "$dev" -n "$nsid" -o binary 2>/dev/null |
			od -An -tu2 -v -w4096)"
		n=${ids[0]:-0}
		for ((i = 1; i <= n; i++)); do
			if [ "${ids[i]}" = "$ctrl" ]; then
				printf '%s ' "$nsid"
				break
			fi
		done
	done
	echo
}
