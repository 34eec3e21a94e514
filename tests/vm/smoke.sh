#!/bin/bash
# Guest smoke tests (KTAP): the foundation every later test stands on.
# The emulated NVMe PF binds to nvme, its secondary controllers get flexible
# resources and come online, VFs appear, each VF works as an NVMe
# controller, a VF binds to vfio-pci through driver_override, its VFIO cdev
# opens and binds to iommufd, and our Rust module loads.
#
# SMOKE_VFS (default 4) is how many VFs to enable: anything else than what
# the later checks expect makes them fail, by name.
. "$(dirname "$0")/lib/ktap.sh"
. "$(dirname "$0")/lib/sriov.sh"

WANT_VFS=4
SMOKE_VFS=${SMOKE_VFS:-$WANT_VFS}
NVME_LM=${NVME_LM:-$NVME_VFIO_REPO/tools/nvme-lm/target/release/nvme-lm}

check_pf_bound() {
	PF=$(pf_bdf) || return 1
	local drv; drv=$(bound_driver "$PF")
	[ "$drv" = nvme ] || fail "PF $PF is bound to '${drv:-nothing}', not nvme" || return
	PF_DEV=$(pci_nvme_dev "$PF") || return 1
	wait_ctrl_live "$PF_DEV" && echo "PF $PF is $PF_DEV"
}

check_primary_released() {
	release_primary_flexible "$PF_DEV" || return 1
	nvme primary-ctrl-caps "$PF_DEV" -o json | python3 -c '
import json, sys
c = json.load(sys.stdin)
print("flexible VQ: {} total, {} on the primary; VI: {} total, {} on the primary".format(
    c["vqfrt"], c["vqrfap"], c["vifrt"], c["virfap"]))
if c["vqrfap"] != 0 or c["virfap"] != 0:
    sys.exit("primary still holds flexible resources after reset")
'
}

check_vfs_enabled() {
	enable_vfs "$PF" "$SMOKE_VFS" || return 1
	local n; n=$(cat "/sys/bus/pci/devices/$PF/sriov_numvfs")
	[ "$n" -eq "$WANT_VFS" ] || fail "sriov_numvfs is $n, expected $WANT_VFS VFs enabled" || return
	local i
	for i in $(seq 0 $((WANT_VFS - 1))); do
		[ -e "/sys/bus/pci/devices/$PF/virtfn$i" ] || fail "virtfn$i missing" || return
		echo "VF$i: $(vf_bdf "$PF" "$i") driver '$(bound_driver "$(vf_bdf "$PF" "$i")")'"
	done
}

check_secondaries_online() {
	local i scid
	for i in $(seq "$WANT_VFS"); do
		scid=$(vf_scid "$PF_DEV" "$i") || return 1
		online_vf "$PF_DEV" "$scid" || return 1
	done
	secondary_list "$PF_DEV" | awk -v want="$WANT_VFS" -v vq="$VQ_PER_VF" -v vi="$VI_PER_VF" '
		{ print "scid " $1 " vfn " $2 " online " $3 " nvq " $4 " nvi " $5 }
		$2 >= 1 && $2 <= want && $3 == 1 && $4 == vq && $5 == vi { ok++ }
		END { if (ok != want) { print ok+0 " of " want " secondaries online with resources" > "/dev/stderr"; exit 1 } }'
}

# Bind VF $1 (0-based) to nvme, check it comes up as the right controller.
check_vf_is_nvme() {
	local vf scid dev got
	vf=$(vf_bdf "$PF" "$1") || return 1
	scid=$(vf_scid "$PF_DEV" $(($1 + 1))) || return 1
	bind_driver "$vf" nvme || return 1
	dev=$(pci_nvme_dev "$vf") || return 1
	wait_ctrl_live "$dev" || return 1
	got=$(cat "/sys/class/nvme/${dev#/dev/}/cntlid")
	[ "$got" = "$scid" ] || fail "$vf: cntlid $got, expected secondary controller $scid" || return
	echo "$vf is $dev, cntlid $got, model '$(cat "/sys/class/nvme/${dev#/dev/}/model" | xargs)'"
	bind_driver "$vf" ""
}

check_vf_vfio_pci() {
	VF0=$(vf_bdf "$PF" 0) || return 1
	bind_driver "$VF0" vfio-pci || return 1
	local d
	d=$(ls "/sys/bus/pci/devices/$VF0/vfio-dev" 2>/dev/null | head -n1)
	[ -n "$d" ] || fail "$VF0: no vfio-dev in sysfs" || return
	[ -c "/dev/vfio/devices/$d" ] || fail "/dev/vfio/devices/$d missing" || return
	VF0_CDEV=/dev/vfio/devices/$d
	echo "$VF0 is $VF0_CDEV (group $(basename "$(readlink "/sys/bus/pci/devices/$VF0/iommu_group")"))"
}

check_vfio_iommufd() {
	[ -x "$NVME_LM" ] || fail "$NVME_LM not built" || return
	[ -n "${VF0_CDEV:-}" ] || fail "no VF bound to vfio-pci, nothing to open" || return
	"$NVME_LM" vfio-probe "$VF0_CDEV" --expect-id "$NVME_PCI_ID"
}

# The modules modprobe sees are this build's, from the guest's own mount
# (tests/vm/guest-init.sh), whatever the host's root has under /lib/modules.
check_modules_of_this_build() {
	local rel dir ko magic mp
	rel=$(uname -r) dir=/lib/modules/$(uname -r)
	# /proc/mounts names the mount point with symlinks resolved (/lib is
	# usr/lib on merged-/usr Debian).
	mp=$(readlink -f /lib/modules)
	awk -v mp="$mp" '$2 == mp && $1 == "modules" && $3 == "9p" { found = 1 } END { exit !found }' \
		/proc/mounts || fail "/lib/modules ($mp) is not the build's modules share" || return
	[ -f "$dir/modules.dep" ] || fail "$dir/modules.dep missing" || return
	ko=$(modinfo -n nvme_vfio_pci) || fail "modinfo finds no nvme_vfio_pci" || return
	case $ko in
	"$dir"/*) ;;
	*) fail "modprobe would load $ko, not a module under $dir" || return ;;
	esac
	magic=$(modinfo -F vermagic nvme_vfio_pci)
	[ "${magic%% *}" = "$rel" ] || fail "$ko was built for '${magic%% *}', running $rel" || return
	echo "$ko: vermagic $magic"
	# As on a distro kernel, nvme (with the PF service) and vfio-pci-core
	# are modules; the boot loaded nvme for the PFs.
	local m
	for m in nvme vfio_pci_core; do
		ko=$(modinfo -n "$m") || fail "$m is not a module of this build" || return
		case $ko in
		"$dir"/*) echo "$m: $ko" ;;
		*) fail "$m is built in ($ko), not a module" || return ;;
		esac
	done
	grep -q "^nvme " /proc/modules || fail "nvme is not loaded" || return
}

check_rust_module() {
	modprobe nvme_vfio_pci || fail "modprobe nvme_vfio_pci failed" || return
	[ -d /sys/module/nvme_vfio_pci ] || fail "nvme_vfio_pci not in /sys/module" || return
	grep "^nvme_vfio_pci " /proc/modules || fail "nvme_vfio_pci is not a loaded module" || return
}

ktap_begin smoke $((8 + WANT_VFS))
ktap_check pf_bound_to_nvme check_pf_bound
ktap_check primary_flexible_released check_primary_released
ktap_check vfs_enabled check_vfs_enabled
ktap_check secondaries_online_with_resources check_secondaries_online
for i in $(seq 0 $((WANT_VFS - 1))); do
	ktap_check "vf${i}_enumerates_as_nvme" check_vf_is_nvme "$i"
done
ktap_check vf_bound_to_vfio_pci check_vf_vfio_pci
ktap_check vfio_cdev_binds_iommufd check_vfio_iommufd
ktap_check modules_of_this_build check_modules_of_this_build
ktap_check rust_module_loads check_rust_module
ktap_end
