#!/bin/bash
# nvme_vfio_pci, the variant driver (KTAP): it binds an NVMe VF through
# driver_override, takes the VF's migration handle when the PF supports
# Host Managed Live Migration (and serves it as plain vfio-pci when not),
# the VF works through VFIO as under vfio-pci, its VFIO migration features
# are STOP_COPY | P2P | PRE_COPY (none without HMLM), its media_migration
# option (a sysfs file of the bound VF) is off by default, settable while the
# device is closed and refused while a VFIO user holds it open (refused on a
# VF without migration), and it unbinds (taking the file away), rebinds and
# unloads cleanly.
#   variant.sh migratable|plain
. "$(dirname "$0")/lib/ktap.sh"
. "$(dirname "$0")/lib/sriov.sh"
. "$(dirname "$0")/lib/kernel-log.sh"
NVME_LM=${NVME_LM:-$NVME_VFIO_REPO/tools/nvme-lm/target/release/nvme-lm}
EXPECT=${1:-migratable}

# migratable: host a's PF (HMLM); plain: host c's (none).
HOST=a
[ "$EXPECT" = migratable ] || HOST=c

setup() {
	PF=$(pf_bdf $HOST) || return 1
	PF_DEV=$(pci_nvme_dev "$PF") || return 1
	[ "$(cat "/sys/bus/pci/devices/$PF/sriov_numvfs")" -ge 1 ] || sriov_setup 4 $HOST || return 1
	VF=$(vf_bdf "$PF" 0) || return 1
	SCID=$(vf_scid "$PF_DEV" 1) || return 1
	modprobe nvme_vfio_pci || fail "modprobe nvme_vfio_pci failed" || return
	kernel_log_mark
}

check_binds() {
	# What libvirt does: of the modules whose vfio_pci: alias matches the
	# VF's modalias (vfio-pci's own matches every device), the one with the
	# most specific alias (fewest wildcards) is the variant driver to use.
	local alias mod
	alias="vfio_$(cat "/sys/bus/pci/devices/$VF/modalias")"
	mod=$(modprobe -R "$alias" 2>/dev/null | python3 -c '
import fnmatch, subprocess, sys
alias, best = sys.argv[1], []
for mod in sys.stdin.read().split():
    pats = subprocess.run(["modinfo", "-F", "alias", mod], capture_output=True, text=True).stdout.split()
    wild = [p.count("*") for p in pats if fnmatch.fnmatchcase(alias, p)]
    if wild:
        best.append((min(wild), mod))
        print(f"{mod}: alias with {min(wild)} wildcards", file=sys.stderr)
print(min(best)[1] if best else "")' "$alias")
	echo "$alias -> ${mod:-nothing}"
	[ "$mod" = nvme_vfio_pci ] || fail "$alias resolves to '${mod}', not nvme_vfio_pci" || return
	bind_driver "$VF" nvme-vfio-pci || return 1
	local msg
	msg=$(suite_log | grep -E "$VF: (live migration|no live migration)")
	echo "$msg"
	case $EXPECT in
	migratable) echo "$msg" | grep -q "live migration: secondary controller $SCID$" ||
		fail "no migration handle for secondary controller $SCID" || return ;;
	plain) echo "$msg" | grep -q "no live migration" ||
		fail "expected plain vfio-pci behaviour on a PF without HMLM" || return ;;
	esac
}

check_io() {
	local d
	d=$(ls "/sys/bus/pci/devices/$VF/vfio-dev" 2>/dev/null | head -n1)
	[ -n "$d" ] || fail "$VF: no VFIO cdev under nvme-vfio-pci" || return
	"$NVME_LM" selftest io --vf "/dev/vfio/devices/$d" | grep -E "^# [0-9]|^not ok" || true
	"$NVME_LM" selftest io --vf "/dev/vfio/devices/$d" >/dev/null || return
	local info want
	info=$("$NVME_LM" mig-info "/dev/vfio/devices/$d") || fail "mig-info failed" || return
	echo "$info"
	case $EXPECT in
	migratable) want="migration: STOP_COPY | P2P | PRE_COPY" ;;
	plain) want="migration: none" ;;
	esac
	echo "$info" | grep -qx "$want" || fail "expected '$want'"
}

OPT_FILE() { echo "/sys/bus/pci/devices/$VF/media_migration"; }

# opt_write VALUE: one write(2) of VALUE to the option's file; prints "ok" or
# the errno's name.
opt_write() {
	python3 - "$(OPT_FILE)" "$1" <<'PY'
import errno, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
try:
    os.write(fd, sys.argv[2].encode())
    print("ok")
except OSError as e:
    # EOPNOTSUPP by its kernel name (Python's errorcode says ENOTSUP).
    names = {**errno.errorcode, errno.EOPNOTSUPP: "EOPNOTSUPP"}
    print(names.get(e.errno, str(e.errno)))
finally:
    os.close(fd)
PY
}

# expect_write VALUE WANT: writing VALUE gives WANT ("ok" or an errno name).
expect_write() {
	local got
	got=$(opt_write "$1") || fail "cannot open $(OPT_FILE)" || return
	echo "write '${1%$'\n'}': $got"
	[ "$got" = "$2" ] || fail "writing '${1%$'\n'}' to media_migration: $got, expected $2"
}

# expect_option V: the option's file reads exactly "V\n".
expect_option() {
	local got
	got=$(cat "$(OPT_FILE)"; echo x) || fail "cannot read $(OPT_FILE)" || return
	[ "$got" = "$1"$'\n'x ] ||
		fail "media_migration reads $(printf %q "${got%x}"), expected $(printf %q "$1"$'\n')"
}

# vfio_hold CDEV: a VFIO user that holds the device open (bound to iommufd,
# which opens it in the driver) until killed; sets HOLDER, its pid, once it
# holds the device.
vfio_hold() {
	local fifo line
	fifo=$(mktemp -u)
	mkfifo "$fifo" || return 1
	python3 - "$1" >"$fifo" <<'PY' &
import fcntl, os, struct, sys, time
iommufd = os.open("/dev/iommu", os.O_RDWR)
dev = os.open(sys.argv[1], os.O_RDWR)
VFIO_DEVICE_BIND_IOMMUFD = (ord(";") << 8) | (100 + 18)
# argsz, flags, iommufd, out_devid
fcntl.ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, struct.pack("=IIiI", 16, 0, iommufd, 0))
print("held", flush=True)
while True:
    time.sleep(3600)
PY
	HOLDER=$!
	read -r line <"$fifo"
	rm -f "$fifo"
	[ "$line" = held ] || fail "cannot hold $1 open" || return
}

release_hold() {
	kill "$HOLDER" 2>/dev/null
	wait "$HOLDER" 2>/dev/null
	HOLDER=
}

check_media_option() {
	local f mode
	f=$(OPT_FILE)
	[ -f "$f" ] || fail "$f: missing" || return
	mode=$(stat -c %a "$f")
	[ "$mode" = 644 ] || fail "$f: mode $mode, not 644" || return
	expect_option 0 || return
	case $EXPECT in
	migratable)
		expect_write $'1\n' ok && expect_option 1 &&
			expect_write $'0\n' ok && expect_option 0 &&
			expect_write y ok && expect_option 1 &&
			expect_write garbage EINVAL && expect_option 1 &&
			expect_write n ok && expect_option 0 &&
			expect_write on ok && expect_option 1 &&
			expect_write $'0\n' ok && expect_option 0 ;;
	plain)
		expect_write $'1\n' EOPNOTSUPP && expect_option 0 || return
		suite_log | grep -q "$VF: media_migration: the VF has no live migration" ||
			fail "no kernel message naming why the option is refused" ;;
	esac
}

check_media_busy() {
	local d rc
	d=$(ls "/sys/bus/pci/devices/$VF/vfio-dev" 2>/dev/null | head -n1)
	[ -n "$d" ] || fail "$VF: no VFIO cdev" || return
	if [ "$EXPECT" = plain ]; then
		vfio_hold "/dev/vfio/devices/$d" || return
		expect_write $'1\n' EOPNOTSUPP && expect_option 0
		rc=$?
		release_hold
		return $rc
	fi
	expect_write $'1\n' ok || return
	vfio_hold "/dev/vfio/devices/$d" || return
	# Open: the value stays, any write is refused.
	expect_option 1 && expect_write $'0\n' EBUSY && expect_write $'1\n' EBUSY &&
		expect_option 1
	rc=$?
	release_hold
	[ $rc -eq 0 ] || return $rc
	suite_log | grep -q "$VF: media_migration: cannot change while the VFIO device is open" ||
		fail "no kernel message naming why the option is refused" || return
	# Closed (the last user went away): settable again.
	expect_write $'0\n' ok && expect_option 0 && expect_write $'1\n' ok && expect_option 1
}

check_unbind_unload() {
	bind_driver "$VF" "" || return 1
	[ ! -e "$(OPT_FILE)" ] || fail "$(OPT_FILE) outlives the unbind" || return
	bind_driver "$VF" nvme-vfio-pci || fail "rebind failed" || return
	# A new binding starts with the option off.
	expect_option 0 || return
	bind_driver "$VF" "" || return 1
	[ ! -e "$(OPT_FILE)" ] || fail "$(OPT_FILE) outlives the unbind" || return
	rmmod nvme_vfio_pci || fail "rmmod nvme_vfio_pci failed" || return
	modprobe nvme_vfio_pci || fail "modprobe after rmmod failed" || return
	kernel_log_clean "outlives" || return
}

ktap_begin "variant_$EXPECT" 5
errf=$(mktemp)
if ! setup >/dev/null 2>"$errf"; then
	for t in binds vfio_io media_migration_option media_migration_busy unbind_rebind_unload; do ktap_not_ok "$t" "setup: $(tail -n1 "$errf")"; done
	exit 1
fi
ktap_check binds check_binds
ktap_check vfio_io check_io
ktap_check media_migration_option check_media_option
ktap_check media_migration_busy check_media_busy
ktap_check unbind_rebind_unload check_unbind_unload
ktap_end
