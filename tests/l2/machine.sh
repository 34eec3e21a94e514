# The L2 guest's machine, stated once. Sourced.
# shellcheck shell=bash
#
# scripts/build-l2.sh boots the guest with these arguments to the point
# where its init waits for the NVMe device and saves it (QEMU's migration
# stream to a file, booted.state); tests/vm/qemu-migrate.sh restores that
# snapshot with the same arguments (QEMU refuses a stream from a different
# machine) and hotplugs the VF into the running guest. Booting Linux under
# TCG inside the TCG test VM takes about 100 s; on the host, with the same
# QEMU binary, under a second.
#
# PCIe native hotplug: q35 hands root-port hotplug to ACPI by default, and
# the L2 kernel has no ACPI; with that off, pciehp sees the VF at once.

# l2_machine DIR: sets L2_ARGS to the machine of the L2 guest in DIR.
l2_machine() {
	L2_ARGS=(-M q35 -accel tcg -m 32 -nodefaults -display none
		-L /usr/share/qemu -L /usr/share/seabios -bios qboot.rom
		-global ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off
		-device pcie-root-port,id=rp0,chassis=1
		-kernel "$1/bzImage" -initrd "$1/initramfs.cpio"
		-append "console=ttyS0 loglevel=5")
}

# Workers of the guest's init that print "l2: worker W round R: ..." lines
# (tests/l2/l2-init.c: WORKERS writers and the reader), which the suite
# waits for; the init's "present, N workers" line is checked against it.
L2_WORKERS=3
