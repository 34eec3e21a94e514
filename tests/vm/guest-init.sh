#!/bin/bash
# PID 1 of the test VM. The root file system is the host's, read-only; give
# the guest the writable and virtual file systems it needs, mount the
# kernel's modules and the job directory, then either run the job (its
# stdout, KTAP, goes to ttyS1) or open a shell on the console.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/tmp TERM=${TERM:-linux} LANG=C.UTF-8

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
# devtmpfs has no /dev/fd: bash's process substitution (<(...)) needs it.
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
for d in /tmp /run /var/tmp /var/log /var/lib/dhcp /root; do
	mount -t tmpfs -o mode=1777 tmpfs "$d" 2>/dev/null
done
mount -t debugfs debugfs /sys/kernel/debug
# /lib/modules: the host's root may have none (a machine that never had a
# kernel package installed). Overlay the directory that holds it with a tmpfs
# upper layer, so the guest can make the mount point whatever the host has,
# and mount this build's modules on it (covering the host's, if any).
# Nothing on the host is created or changed.
libdir=$(readlink -f /lib)
mkdir -p /run/lib-overlay/upper /run/lib-overlay/work
mount -t overlay lib-overlay -o "lowerdir=$libdir,upperdir=/run/lib-overlay/upper,workdir=/run/lib-overlay/work" "$libdir"
mkdir -p /lib/modules
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,ro modules /lib/modules
# No udev: load the drivers of the devices present (nvme, virtio, ...), as
# a distro's coldplug would; nvme and vfio-pci-core are modules.
for m in /sys/bus/pci/devices/*/modalias; do
	modprobe -qab "$(cat "$m")" 2>/dev/null
done
mkdir -p /run/job
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 job /run/job
# The repository has its own share: its host path may lie under a directory
# the guest covers with a tmpfs (/tmp, /root).
mkdir -p "$nvmevfio_repo" 2>/dev/null
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,ro repo "$nvmevfio_repo"
ip link set lo up 2>/dev/null
hostname nvme-vfio-vm

export NVME_VFIO_REPO=$nvmevfio_repo NVME_VFIO_JOB=/run/job
# shellcheck disable=SC1091
[ -f /run/job/env ] && . /run/job/env
# The L2 guest (kernel and initramfs) has its own share too, when given.
if [ -n "${L2_DIR:-}" ]; then
	mkdir -p "$L2_DIR"
	mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,ro l2 "$L2_DIR"
fi
if ! cd "$NVME_VFIO_REPO"; then
	echo "guest-init: repository $NVME_VFIO_REPO not reachable" >/dev/ttyS0
	busybox poweroff -f
fi

if [ "$nvmevfio_mode" = shell ]; then
	echo "nvme-vfio test VM: $(uname -r). Repo at $NVME_VFIO_REPO. Leave with 'busybox poweroff -f' (or Ctrl-a x)."
	setsid -c bash -l </dev/ttyS0 >/dev/ttyS0 2>&1
else
	# The job's stdout is the KTAP stream; stderr and the kernel log go to the
	# console log.
	bash -c "$(cat /run/job/cmd)" </dev/null >/dev/ttyS1 2>/dev/ttyS0
	echo "# nvme-vfio exit status $?" >/dev/ttyS1
fi
sync
busybox poweroff -f
