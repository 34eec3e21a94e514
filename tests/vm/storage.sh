#!/bin/bash
# The two storage scenarios of the test bed (KTAP), on its two hosts: host a
# and host b, each an SR-IOV NVMe PF that is its own NVM subsystem
# (tests/vm/run-vm.py).
#
# Shared storage: NSID 1 of a host is attached to every controller of its
# subsystem (a dual-ported drive); a VF migrates to another VF of the same
# subsystem and the guest keeps its data. Local storage: each VF has its
# private namespace (NSID 2 + VF index, attached to the VF's secondary
# controller and to the PF); a migration to a VF with other namespaces,
# on the same host or the other, is refused in PRE_COPY, before the source
# stops, naming why, and the source goes on (no media migration yet).
. "$(dirname "$0")/lib/ktap.sh"
. "$(dirname "$0")/lib/sriov.sh"
. "$(dirname "$0")/lib/kernel-log.sh"
NVME_LM=${NVME_LM:-$NVME_VFIO_REPO/tools/nvme-lm/target/release/nvme-lm}
D=$(mktemp -d)

setup() {
	PF_A=$(pf_bdf a) && PF_B=$(pf_bdf b) || return 1
	PF=$PF_A
	[ "$(cat "/sys/bus/pci/devices/$PF_A/sriov_numvfs")" -ge 2 ] || sriov_setup 4 a || return 1
	[ "$(cat "/sys/bus/pci/devices/$PF_B/sriov_numvfs")" -ge 1 ] || sriov_setup 4 b || return 1
	DEV_A=$(pci_nvme_dev "$PF_A") && DEV_B=$(pci_nvme_dev "$PF_B") || return 1
	PCID_A=$(pf_cntlid "$DEV_A") && PCID_B=$(pf_cntlid "$DEV_B") || return 1
	modprobe nvme_vfio_pci || fail "modprobe nvme_vfio_pci failed" || return
	PF=$PF_B bind_vfs_vfio nvme-vfio-pci 1 || return 1
	B0=$VF0 CDEV_B0=$CDEV0
	PF=$PF_A bind_vfs_vfio nvme-vfio-pci 2 || return 1
	kernel_log_mark
}

subsysnqn() { cat "/sys/class/nvme/${1#/dev/}/subsysnqn"; }
nguid_of() { nvme id-ns "$1" -n "$2" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["nguid"])'; }

check_two_hosts() {
	local qa qb ga gb
	qa=$(subsysnqn "$DEV_A") && qb=$(subsysnqn "$DEV_B") || return 1
	echo "host a: $PF_A $DEV_A $qa; host b: $PF_B $DEV_B $qb"
	[ "$qa" != "$qb" ] || fail "both PFs are in subsystem $qa" || return
	ga=$(nguid_of "$DEV_A" 1) && gb=$(nguid_of "$DEV_B" 1) || return 1
	echo "NSID 1: NGUID $ga on host a, $gb on host b"
	[ "$ga" != "$gb" ] || fail "NSID 1 is the same namespace (NGUID $ga) on both hosts" || return
	# Shared storage: NSID 1 is attached to the PF and to every VF.
	local i scid got
	for i in 1 2 3 4; do
		scid=$(vf_scid "$DEV_A" "$i") || return 1
		got=$(ns_of_ctrl "$DEV_A" "$scid")
		[ "$got" = "1 " ] || fail "host a, secondary controller $scid: NSIDs '$got', expected 1 only" || return
	done
}

# nvme-lm migrate from $1 to $2; prints its report; fails if it fails.
migrate() { "$NVME_LM" migrate --vf-a "$1" --vf-b "$2" --blocks 16 2>&1; }

check_shared_storage_migrates() {
	local out
	out=$(migrate "$CDEV0" "$CDEV1") || { echo "$out"; fail "$(tail -n1 <<<"$out")"; return; }
	grep -E "^I/O:|^result:" <<<"$out"
}

# VF0 and VF1 of each host (VFN 1 and 2), the VFs this suite migrates, get
# their private namespaces (NSID VFN + 1); the other VFs are left alone (a
# namespace change queues an event on every controller it concerns).
# private_ns OP: attach (or detach) each, then check the NSIDs the PF
# reports attached to the VF's controller.
private_ns() {
	local op=$1 host dev pcid i scid want got
	for host in a b; do
		dev=$DEV_A pcid=$PCID_A
		[ $host = a ] || dev=$DEV_B pcid=$PCID_B
		for i in 1 2; do
			scid=$(vf_scid "$dev" "$i") || return 1
			want="1 $((i + 1)) "
			[ "$op" = attach ] || want="1 "
			"${op}_ns" "$dev" $((i + 1)) "$pcid,$scid" || return 1
			got=$(ns_of_ctrl "$dev" "$scid")
			[ "$got" = "$want" ] ||
				fail "host $host, secondary controller $scid after $op: NSIDs '$got', expected '$want'" || return
		done
	done
}

check_private_namespaces() {
	private_ns attach || return
	echo "hosts a and b: VF0 has NSIDs 1 (shared) and 2 (private), VF1 1 and 3; the PF all three"
}

# A refused migration: non-zero exit, refused in PRE_COPY before the source
# stopped, the source went on with verified I/O, and the destination's
# kernel log names $3.
refused() {
	local out vf=$4
	if out=$(migrate "$1" "$2"); then
		echo "$out"
		fail "migration to a VF with other storage succeeded" || return
	fi
	echo "$out" | grep -E "^migration failed|^source after"
	grep -q "refused the source in PRE_COPY, before the source stopped" <<<"$out" ||
		fail "not refused in PRE_COPY: $(grep -m1 '^migration failed' <<<"$out")" || return
	grep -q "^source after the failure: PreCopy$" <<<"$out" ||
		fail "the source was not left running in PRE_COPY" || return
	grep -q "^source after the failure: I/O written and verified$" <<<"$out" ||
		fail "the source did no verified I/O after the refusal" || return
	suite_log | grep "$vf: migration stream rejected: incompatible source: $3" ||
		fail "no dev_err on $vf naming '$3'" || return
}

check_local_same_host_refused() {
	refused "$CDEV0" "$CDEV1" "different namespaces attached" "$VF1"
}

check_local_other_host_refused() {
	refused "$CDEV0" "$CDEV_B0" "different NVM subsystem" "$B0"
}

check_private_namespaces_detached() {
	private_ns detach || return
	# Shared storage again: the same VFs migrate.
	check_shared_storage_migrates
}

CASES="two_hosts:check_two_hosts shared_storage_migrates:check_shared_storage_migrates
	private_namespaces:check_private_namespaces
	local_storage_same_host_refused:check_local_same_host_refused
	local_storage_other_host_refused:check_local_other_host_refused
	private_namespaces_detached:check_private_namespaces_detached"
ktap_begin storage "$(echo $CASES | wc -w)"
errf=$(mktemp)
if ! setup >/dev/null 2>"$errf"; then
	for c in $CASES; do ktap_not_ok "${c%%:*}" "setup: $(tail -n1 "$errf")"; done
	exit 1
fi
for c in $CASES; do
	ktap_check "${c%%:*}" "${c#*:}"
done
for vf in "$VF0" "$VF1" "$B0"; do bind_driver "$vf" ""; done
rm -rf "$D"
ktap_end
