#!/usr/bin/env python3
"""Debian's cloud kernel with virtio disks (and a network, when sparkler has
--net): `sparkler run --disk root.ext4 --disk data.img,ro` with the virtio
initramfs of linux_assets.py, whose /init loads the kernel's own virtio
modules, mounts /dev/vda, reads the file the host put there, writes one,
reads /dev/vdb and brings up eth0.

usage: virtio_test.py SPARKLER CACHE_DIR

On a real KVM host (VT-x/AMD-V) init must get through all of it, and the
host then finds the guest's file in the ext4 image (debugfs). On a PVM host
(guest kernel code emulated, PLATFORM notes) the kernel stops long before
it probes PCI: the test says so, checks what the kernel's log shows it
parsed (our command line, e820 map, ACPI tables with the MCFG of the PCI
host bridge), that sparkler took the disks and ended with the documented
INTERNAL_ERROR report, and that the images are as they were."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import boot_test  # noqa: E402  (kvm_kind, check, check_common)

HELLO = "hello from the host"
DATA_MARKER = b"SPARKLER-DATA-01"
MODULES = ["virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev",
           "virtio_pci", "virtio_blk", "failover", "net_failover", "virtio_net"]


def check(cond, msg, log=""):
    boot_test.check(cond, msg, log)


def tool(name):
    for d in ("/sbin", "/usr/sbin", "/bin", "/usr/bin"):
        if os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    return shutil.which(name)


def make_disks(tmp):
    """root.ext4: 16 MiB of ext4 with hello.txt (mke2fs -d); data.img: 1 MiB, a marker."""
    mke2fs = tool("mke2fs")
    if not mke2fs:
        boot_test.fail("mke2fs is missing: install e2fsprogs (scripts/deps.sh test)")
    src = os.path.join(tmp, "rootdir")
    os.makedirs(src)
    open(os.path.join(src, "hello.txt"), "w").write(HELLO + "\n")
    root = os.path.join(tmp, "root.ext4")
    r = subprocess.run([mke2fs, "-q", "-F", "-t", "ext4", "-d", src, root, "16M"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        boot_test.fail("mke2fs: " + r.stdout)
    data = os.path.join(tmp, "data.img")
    open(data, "wb").write(DATA_MARKER.ljust(1 << 20, b"\0"))
    return root, data


def fs_file(image, name):
    """A file's contents in an ext4 image (debugfs), or None."""
    r = subprocess.run([tool("debugfs") or "debugfs", "-R", "cat /" + name, image],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return r.stdout if r.returncode == 0 and r.stdout else None


def fs_clean(image):
    r = subprocess.run([tool("e2fsck") or "e2fsck", "-f", "-n", image],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return r.returncode == 0


def net_args(sparkler):
    """--net when this sparkler has it and a TAP can be made here; else nothing."""
    h = subprocess.run([sparkler, "run", "--help"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True).stdout
    if "--net tap=" not in h or os.geteuid() != 0 or not os.path.exists("/dev/net/tun"):
        return []
    return ["--net", "tap=spkvio%d" % (os.getpid() % 10000)]


def main():
    sparkler, cache = sys.argv[1], sys.argv[2]
    host = boot_test.kvm_kind()
    if host == "none" or not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("SKIP: /dev/kvm is not usable here")
        sys.exit(77)
    print("KVM kind: %s (%s)" % (host, "guest kernel code emulated: Linux stops before PCI"
                                 if host == "pvm" else "hardware virtualization"))
    r = subprocess.run([sys.executable, os.path.join(HERE, "linux_assets.py"), cache],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        boot_test.fail("could not prepare the kernel and initramfs: " + r.stderr)
    assets = dict(line.split("=", 1) for line in r.stdout.split())
    with tempfile.TemporaryDirectory() as tmp:
        root, data = make_disks(tmp)
        run(sparkler, host, assets, root, data)


def run(sparkler, host, assets, root, data):
    cmdline = "console=ttyS0 reboot=k panic=-1"
    if host == "pvm":
        cmdline += " noxsave"  # PVM cannot emulate xsave/xrstor at CPL0 (sparkler adds it too)
    # on a real host init takes ~1 s; on PVM the test stops the kernel once
    # it has printed what check_common looks for (the console comes up after
    # all of it): --timeout only bounds a run that never gets there
    timeout = 1080 if host == "pvm" else 60
    net = net_args(sparkler)
    cmd = [sparkler, "run", "--kernel", assets["BZIMAGE"], "--initrd", assets["INITRD_VIRTIO"],
           "--cmdline", cmdline, "--mem", boot_test.MEM, "--timeout", str(timeout),
           "--disk", root, "--disk", data + ",ro"] + net
    print("running: " + " ".join(cmd))
    markers = ["console [ttyS0] enabled"] if host == "pvm" else []
    log, err, rc, took, stopped = boot_test.run_until(cmd, markers, timeout + 60)
    print("sparkler exited with %d after %.1f s%s" % (
        rc, took, " (stopped by the test once the kernel had printed what it checks)"
        if stopped else ""))
    print("---- sparkler stderr ----\n" + err.strip())
    check("virtio-blk" not in err, "sparkler took both disks (no virtio-blk error)", log)
    boot_test.check_common(log, cmdline, 1)
    if host == "pvm":
        check_pvm(log, err, rc, root, data, stopped)
    else:
        check_real(log, err, rc, root, data, bool(net))
    print("PASS (KVM kind %s, %.1f s)" % (host, took))


# What PVM's emulator stops on (PLATFORM notes), by the first instruction bytes.
STOPPERS = [("cc", "int3 (the kernel's int3_selftest)"), ("f0 48 0f c7", "lock cmpxchg16b"),
            ("0f ae", "an xsave/xrstor/fxsave-family instruction"), ("db e3", "fninit (x87)")]


def why_stopped(err):
    m = re.search(r"INTERNAL_ERROR on vCPU \d+ at RIP (0x[0-9a-f]+).*insn=([0-9a-f ]+)", err)
    if not m:
        return None
    insn = m.group(2).strip()
    what = next((name for pfx, name in STOPPERS if insn.startswith(pfx)), "instruction " + insn)
    return "KVM could not emulate %s at RIP %s in guest kernel mode" % (what, m.group(1))


def check_pvm(log, err, rc, root, data, stopped):
    why = why_stopped(err)
    check((stopped and rc == 5) or (rc == 4 and why is not None),
          "the run ended as documented on PVM: stopped by the test (SIGTERM, status 5) once "
          "the kernel had printed what it checks, or an INTERNAL_ERROR (status 4; got %d)"
          % rc, log)
    check("SPARKLER-VIRTIO-INIT" not in log, "init did not run (it cannot here)", log)
    lines = [l for l in log.splitlines() if l.strip()]
    print("note: on this PVM host Linux could not get as far as probing PCI and loading "
          "virtio_pci, so the disks were never read: %s; the kernel's last line was %r" %
          (why or "it was still in early boot at --timeout", lines[-1] if lines else ""))
    check(fs_clean(root), "the ext4 image is still clean (e2fsck -fn)", log)
    check(open(data, "rb").read(16) == DATA_MARKER, "the read-only image is untouched", log)


def check_real(log, err, rc, root, data, net):
    check("SPARKLER-VIRTIO-INIT" in log, "init ran", log)
    check("SPARKLER-INSMOD-FAILED" not in log and
          ("SPARKLER-MODULES-LOADED " + " ".join(MODULES)) in log,
          "init loaded the kernel's virtio modules", log)
    check(re.search(r"SPARKLER-DISK vda serial=drive0 sectors=32768 ro=0", log) is not None,
          "/dev/vda: drive0, 16 MiB, writable", log)
    check(re.search(r"SPARKLER-DISK vdb serial=drive1 sectors=2048 ro=1", log) is not None,
          "/dev/vdb: drive1, 1 MiB, read-only", log)
    check("SPARKLER-MOUNT-OK" in log and ("SPARKLER-READ " + HELLO) in log,
          "the guest mounted the ext4 disk and read the host's file", log)
    check("SPARKLER-READBACK written by the guest" in log and "SPARKLER-UMOUNT-OK" in log,
          "the guest wrote a file, read it back and unmounted", log)
    check(("SPARKLER-VDB " + DATA_MARKER.decode()) in log, "the guest read /dev/vdb", log)
    if net:
        check(re.search(r"SPARKLER-NET eth0 ([0-9a-f]{2}:){5}[0-9a-f]{2}", log) is not None,
              "eth0 (virtio-net) came up", log)
    check("SPARKLER-INIT-OK cpus=1" in log and rc == 0,
          "init finished and the guest powered off (status %d)" % rc, log)
    check(fs_file(root, "from-guest.txt") == "written by the guest\n",
          "the host finds the guest's file in the image (debugfs)", log)
    check(fs_clean(root), "the ext4 image is clean (e2fsck -fn)", log)
    check(open(data, "rb").read(16) == DATA_MARKER, "the read-only image is untouched", log)
    m = re.search(r"boot timer: the guest reached init ([0-9.]+) ms", err)
    if m:
        print("time to init: %s ms" % m.group(1))


if __name__ == "__main__":
    main()
