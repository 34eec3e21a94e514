#!/usr/bin/env python3
"""Boot the test kernel under QEMU and run one command inside it.

The guest's root file system is this host's own root, shared read-only over
virtio-9p; the kernel's modules and a per-run job directory are two more 9p
shares. The command's standard output (KTAP) travels back over a second
serial port into the job directory, the console log into a file beside it.
Every run has a hard timeout. The machine is q35 with an emulated Intel
IOMMU (interrupt remapping, caching mode) and QEMU's NVMe controller with
SR-IOV: three PFs ("hosts" a, b, c), each with four VFs' worth of flexible
queue and interrupt resources and namespaces backed by files in the job
directory.

  run-vm.py --kernel-dir OUT [--timeout S] [--interactive] [-- CMD ...]

Exit status: the command's, or 124 on timeout, 125 if the guest died before
reporting one.
"""

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CACHE = os.environ.get("NVME_VFIO_CACHE") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "nvme-vfio")

# SR-IOV resources: each VF gets 9 VQ resources (admin + 8 I/O queue pairs)
# and 9 VI (MSI-X vectors: admin + one per I/O queue) out of the flexible
# pools; queues up to 2048 entries (QEMU's default MQES).
NUM_VFS = 4
VQ_PER_VF = 9
VI_PER_VF = 9
# The only environment variables that reach the guest's tests: the knobs the
# README documents. Nothing else of the host's environment leaks in.
PASS_ENV = ("SMOKE_VFS", "KUNIT_SUITES", "KUNIT_MODULES", "KUNIT_DOCTESTS", "NVME_LM",
            "HMLM_FILTER", "CDQ_FILTER", "MIG_FILTER", "DEMO_BLOCKS", "BENCH_ROUNDS", "BENCH_ONLY",
            "BENCH_DMA_LOG_REPEATS", "RESUME_FUZZ_SEED", "RESUME_FUZZ_INPUTS", "FUZZ_SEED", "FUZZ_INPUTS",
            "MEDIA_FUZZ_SEED", "MEDIA_FUZZ_INPUTS", "FUZZ_MEDIA_INPUTS", "FAULT_FILTER", "CONC_FILTER")


def kvm_usable():
    """KVM only where the CPU has VMX/SVM: /dev/kvm here may be PVM."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    with open("/proc/cpuinfo") as f:
        flags = f.read()
    return " vmx" in flags or " svm" in flags


# The test bed: two hosts, each an SR-IOV NVMe PF that is its own NVM
# subsystem (own NQN, serial and namespace files). Per host, NSID 1 is
# attached to every controller of the subsystem: shared storage, a
# dual-ported drive that source and destination VF both reach. NSIDs 2 to
# NUM_VFS + 1 are created detached: each VF's private namespace (local
# storage), attached by the tests to that VF's secondary controller and the
# PF (tests/vm/storage.sh), 256 MiB each (sparse files): media migration
# moves a realistic bulk (tests/vm/media.sh). A third PF, host c, is the
# same controller without Host Managed Live Migration (NVME_VFIO_NVME_PROPS'
# hmlm setting does not apply to it) and only NSID 1: where the variant
# driver must serve a VF as plain vfio-pci.
HOSTS = ("a", "b", "c")
NO_HMLM = ("c",)
# Per host: host a's MDTS is 16 KiB (2^2 pages), so every admin data
# transfer to it, the driver's Get/Set Controller State pieces included,
# must respect a small limit; b keeps QEMU's 512 KiB. Both migratable hosts
# carry 96 KiB of device-internal vendor state, more than one Get/Set State
# piece on either (16 KiB on a, the driver's 64 KiB on b).
VENDOR_STATE_BYTES = 96 << 10
HOST_PROPS = {
    "a": ["mdts=2", f"hmlm_vendor_bytes={VENDOR_STATE_BYTES}"],
    "b": [f"hmlm_vendor_bytes={VENDOR_STATE_BYTES}"],
    "c": [],
}
NS_BYTES = 64 << 20
PRIVATE_NS_BYTES = 256 << 20


def ns_ident(host, nsid):
    """NGUID and EUI-64 of a namespace: unique per host and NSID."""
    h = HOSTS.index(host) + 1
    return f"{h:02x}{nsid:02x}" + "5e" * 14, (0x52 << 56) | (h << 48) | (nsid << 40) | 0xa


def nvme_args(job):
    vq_flex = NUM_VFS * VQ_PER_VF
    vi_flex = NUM_VFS * VI_PER_VF
    args = []
    for i, host in enumerate(HOSTS):
        rp, subsys, ctrl = f"rp{i}", f"subsys-{host}", f"nvme-{host}"
        nvme = ",".join([
            "nvme", f"id={ctrl}", f"bus={rp}", f"subsys={subsys}", f"serial=NVMEVFIO{host.upper()}",
            f"sriov_max_vfs={NUM_VFS}",
            f"sriov_vq_flexible={vq_flex}", f"sriov_vi_flexible={vi_flex}",
            f"max_ioqpairs={vq_flex + 2}", f"msix_qsize={vi_flex + 1}",
            f"sriov_max_vq_per_vf={VQ_PER_VF}", f"sriov_max_vi_per_vf={VI_PER_VF}",
        ] + HOST_PROPS[host] + [p for p in os.environ.get("NVME_VFIO_NVME_PROPS", "").split(",")
             if p and not (host in NO_HMLM and p.startswith("hmlm"))])
        args += [
            "-device", f"pcie-root-port,id={rp},bus=pcie.0,chassis={i + 1},slot={i + 1}",
            "-device", f"nvme-subsys,id={subsys},nqn=nqn.2026-11.io.nvme-vfio:host-{host}",
            "-device", nvme,
        ]
        for nsid in range(1, 2 if host in NO_HMLM else NUM_VFS + 2):
            img = os.path.join(job, f"ns-{host}{nsid}.img")
            with open(img, "wb") as f:
                f.truncate(NS_BYTES if nsid == 1 else PRIVATE_NS_BYTES)
            nguid, eui64 = ns_ident(host, nsid)
            drive = f"ns-{host}{nsid}"
            args += [
                "-drive", f"file={img},if=none,id={drive},format=raw,cache=unsafe",
                "-device", ",".join([
                    "nvme-ns", f"drive={drive}", f"bus={ctrl}", f"nsid={nsid}",
                    f"nguid={nguid}", f"eui64={eui64}",
                ] + (["detached=on"] if nsid > 1 else [])),
            ]
    return args


def share(tag, path, readonly):
    ro = ",readonly=on" if readonly else ""
    return ["-fsdev", f"local,id={tag},path={path},security_model=none,multidevs=remap{ro}",
            "-device", f"virtio-9p-pci,fsdev={tag},mount_tag={tag}"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kernel-dir", required=True)
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--interactive", action="store_true")
    ap.add_argument("--memory", default="2G")
    ap.add_argument("--smp", type=int, default=int(os.environ.get("NVME_VFIO_SMP", "1")))
    ap.add_argument("--tcg-thread", choices=("single", "multi"),
                    default=os.environ.get("NVME_VFIO_TCG_THREAD"),
                    help="TCG threads: default multi for one vCPU, single (round-robin) for more")
    ap.add_argument("--append", default=os.environ.get("NVME_VFIO_APPEND", ""))
    ap.add_argument("--qemu", default=os.environ.get("NVME_VFIO_QEMU", "qemu-system-x86_64"))
    ap.add_argument("cmd", nargs="*")
    a = ap.parse_args()
    if a.tcg_thread is None:
        a.tcg_thread = "single" if a.smp > 1 else "multi"

    kdir = os.path.abspath(a.kernel_dir)
    bzimage = os.path.join(kdir, "arch/x86/boot/bzImage")
    modules = os.path.join(kdir, "modroot/lib/modules")
    for p in (bzimage, modules):
        if not os.path.exists(p):
            sys.exit(f"run-vm: {p} missing: build the kernel first (make kernel)")

    vmdir = os.path.join(CACHE, "vm")
    os.makedirs(vmdir, exist_ok=True)
    job = tempfile.mkdtemp(prefix="job-", dir=vmdir)
    with open(os.path.join(job, "cmd"), "w") as f:
        f.write(shlex.join(a.cmd) + "\n")
    l2 = os.environ.get("NVME_VFIO_L2")
    # nvme-cli with the lm plugin (scripts/build-nvme-cli.sh), for
    # tests/vm/nvme-cli.sh. The guest covers /root (where the cache usually
    # is) with a tmpfs, so the binary travels in the job directory.
    nvme_cli = os.environ.get("NVME_VFIO_NVME_CLI")
    if nvme_cli:
        if not os.access(nvme_cli, os.X_OK):
            sys.exit(f"run-vm: NVME_VFIO_NVME_CLI={nvme_cli} is not an executable")
        shutil.copy(nvme_cli, os.path.join(job, "nvme-cli"))
    # Test knobs reach the guest through the job directory.
    with open(os.path.join(job, "env"), "w") as f:
        # The test bed's shape, which the tests' SR-IOV setup follows.
        f.write(f"export VQ_PER_VF={VQ_PER_VF} VI_PER_VF={VI_PER_VF}"
                f" VENDOR_STATE_BYTES={VENDOR_STATE_BYTES}\n")
        # The L2 guest of the running-guest migration (scripts/build-l2.sh).
        # Its directory is a share of its own, mounted at /run/l2.
        if l2:
            f.write("export L2_DIR=/run/l2\n")
        if nvme_cli:
            f.write("export NVME_CLI=/run/job/nvme-cli\n")
        for k, v in sorted(os.environ.items()):
            if k in PASS_ENV:
                f.write(f"export {k}={shlex.quote(v)}\n")

    accel = ["-accel", "kvm", "-cpu", "host"] if kvm_usable() else ["-accel", f"tcg,thread={a.tcg_thread}", "-cpu", "max"]
    append = " ".join([
        "console=ttyS0", "root=rootfs", "rootfstype=9p",
        "rootflags=trans=virtio,version=9p2000.L,msize=262144,cache=loose", "ro",
        f"init={REPO}/tests/vm/guest-init.sh", "intel_iommu=on", "iommu.strict=1", "kmemleak=on",
        # Room for the whole run's kernel log: the checks after every suite read
        # it by sequence number and fail if records were overwritten unread.
        "log_buf_len=16M",
        "panic=-1", "oops=panic", "loglevel=5" if not a.interactive else "",
        f"nvmevfio_repo={REPO}", f"nvmevfio_job={job}",
        "nvmevfio_mode=" + ("shell" if a.interactive else "run"), a.append,
    ])
    # One vCPU unless --smp. More than one run round-robin on one host
    # thread (--tcg-thread single, make check's smp2 boot): with
    # multi-threaded TCG (one host thread per vCPU) QEMU 10.0 aborts in
    # iotlb_to_section() ("section_index < d->map.sections_nb") when a vCPU
    # reaches MMIO through a TLB entry made before another thread changed the
    # memory map (the function resets and BAR changes these tests make by
    # the hundred): the lookup uses the address space's current map, and
    # the vCPU's TLB flush is only queued to it (tcg_commit). Round-robin
    # runs no vCPU with a flush pending (tcg-accel-ops-rr.c). The guest
    # hangs seen earlier with two vCPUs (an idle vCPU's APIC timer never
    # delivered: "timer wakeup didn't happen") were multi-threaded too;
    # round-robin has shown neither.
    qemu = [a.qemu, "-M", "q35,kernel-irqchip=split", *accel, "-smp", str(a.smp), "-m", a.memory,
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-device", "intel-iommu,intremap=on,caching-mode=on",
            "-kernel", bzimage, "-append", append,
            *share("rootfs", "/", True), *share("modules", modules, True),
            *share("repo", REPO, True),
            *share("job", job, False), *nvme_args(job)]
    if l2:
        qemu += share("l2", l2, True)
    # Firmware from Debian's packages (our QEMU build installs no blobs).
    for d in ("/usr/share/qemu", "/usr/share/seabios"):
        if os.path.isdir(d):
            qemu += ["-L", d]
    console = os.path.join(job, "console.log")
    ktap = os.path.join(job, "ktap.log")
    if a.interactive:
        qemu += ["-serial", "mon:stdio", "-serial", f"file:{ktap}"]
        os.execvp(qemu[0], qemu)

    qemu += ["-serial", f"file:{console}", "-serial", f"file:{ktap}"]
    open(ktap, "w").close()
    start = time.monotonic()
    proc = subprocess.Popen(qemu, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    done = threading.Event()

    def follow():
        # Stream the guest's KTAP to our stdout as it arrives.
        with open(ktap, "rb") as f:
            while True:
                chunk = f.read()
                if chunk:
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.flush()
                elif done.is_set():
                    return
                else:
                    time.sleep(0.2)

    t = threading.Thread(target=follow)
    t.start()
    # SIGTERM and SIGHUP (a killed make, a CI timeout) unwind like Ctrl-C.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _: sys.exit(128 + signum))
    timed_out = False
    try:
        qout, _ = proc.communicate(timeout=a.timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        qout, _ = proc.communicate()
    finally:
        # QEMU has a session of its own: when this script is interrupted,
        # nothing else would stop it.
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        done.set()
    t.join()
    elapsed = time.monotonic() - start

    status = None
    with open(ktap, errors="replace") as f:
        for line in f:
            if line.startswith("# nvme-vfio exit status "):
                status = int(line.split()[-1])
    if qout:
        sys.stderr.write(qout.decode(errors="replace"))
    if timed_out or status is None:
        why = f"timed out after {a.timeout} s" if timed_out else "died without reporting a status"
        print(f"run-vm: error: guest {why}; last console lines ({console}):", file=sys.stderr)
        with open(console, errors="replace") as f:
            sys.stderr.write("".join(f.readlines()[-40:]))
        code = 124 if timed_out else 125
    else:
        code = status
    print(f"# vm: {elapsed:.1f} s wall, exit {code}, logs in {job}", file=sys.stderr)
    # Keep the logs of the last few runs only.
    runs = sorted((os.path.join(vmdir, d) for d in os.listdir(vmdir) if d.startswith("job-")),
                  key=os.path.getmtime)
    for old in runs[:-5]:
        shutil.rmtree(old, ignore_errors=True)
    for img in os.listdir(job):
        if img.startswith("ns-") and img.endswith(".img"):
            os.unlink(os.path.join(job, img))
    sys.exit(code)


if __name__ == "__main__":
    main()
