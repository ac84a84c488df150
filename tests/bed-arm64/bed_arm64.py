#!/usr/bin/env python3
"""The arm64 bed: the KVM/arm64 backend's tests under a real KVM/arm64 on an
x86-64 machine.

usage: bed_arm64.py BUILD_ARM64 [TEST...]   (BUILD_ARM64: `make cross-arm64`'s build)

An L1 machine, `qemu-system-aarch64 -M virt,virtualization=on,gic-version=3
-cpu max -smp 2 -m 1024` (QEMU's TCG emulates EL2, so KVM/arm64 runs in it,
in VHE mode), boots Debian's arm64 cloud kernel from bookworm-backports
(6.12: the SMCCC filter that forwards HVC to the monitor needs 6.4+;
bookworm's own 6.1 has no filter) with an initramfs holding busybox-static,
the static cross-built kvm-arm64-test and the arm64 test guests. Packages
come through scripts/arm64-apt.sh (a private apt state: nothing on this
machine is configured or installed), cached under BUILD_ARM64/bed-cache.
On an arm64 host with /dev/kvm the test program runs directly instead.

The L1's /init runs the program and writes its output to a virtio console
(hvc0) that QEMU keeps in a file; the checks stay here. The time from
QEMU's start to the L1's /dev/kvm is printed (a measurement, not an
assertion). Every wait is bounded (QEMU by L1_TIMEOUT); exit status 0
passed, 1 failed, 77 skipped (no qemu-system-aarch64)."""
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "linux"))
import linux_assets  # noqa: E402  (cpio_newc)

L1_TIMEOUT = int(os.environ.get("BED_ARM64_TIMEOUT", "900"))  # s: the whole L1 run, TCG on a loaded 2-core machine
QEMU = "qemu-system-aarch64"

INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /tmp
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "BED-ARM64-UP kvm=$([ -c /dev/kvm ] && echo yes || echo no) uptime=$(cut -d' ' -f1 /proc/uptime)"
{
	echo "BED-ARM64-BEGIN"
	dmesg | grep -E 'kvm \\[1\\]|Linux version'
	/bin/kvm-arm64-test /guests %(tests)s 2>&1
	echo "BED-ARM64-RC=$?"
} >/dev/hvc0
sync
echo "BED-ARM64-DONE"
poweroff -f
"""


def log(msg):
    print(msg, flush=True)


def run(cmd, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), r.returncode, r.stdout[-2000:]))
    return r.stdout


def assets(cache):
    """(kernel, busybox) of Debian arm64, cached."""
    kernel, busybox = os.path.join(cache, "vmlinuz"), os.path.join(cache, "busybox")
    if os.path.exists(kernel) and os.path.exists(busybox):
        return kernel, busybox
    apt = os.path.join(ROOT, "scripts", "arm64-apt.sh")
    pkg = run([apt, cache, "depends", "linux-image-cloud-arm64"]).strip()
    if not pkg.startswith("linux-image-"):
        raise RuntimeError("no arm64 cloud kernel in bookworm-backports: %r" % pkg)
    debs = os.path.join(cache, "debs")
    shutil.rmtree(debs, ignore_errors=True)
    run([apt, cache, "download", debs, pkg, "busybox-static"])
    root = os.path.join(debs, "root")
    for deb in os.listdir(debs):
        if deb.endswith(".deb"):
            run(["dpkg-deb", "-x", os.path.join(debs, deb), root])
    vmlinuz = [f for f in os.listdir(os.path.join(root, "boot")) if f.startswith("vmlinuz-")]
    shutil.copy(os.path.join(root, "boot", vmlinuz[0]), kernel + ".tmp")
    shutil.copy(os.path.join(root, "bin", "busybox"), busybox + ".tmp")
    os.rename(kernel + ".tmp", kernel)
    os.rename(busybox + ".tmp", busybox)
    with open(os.path.join(cache, "kernel-version"), "w") as f:
        f.write(vmlinuz[0][len("vmlinuz-"):] + "\n")
    shutil.rmtree(debs, ignore_errors=True)
    return kernel, busybox


def initramfs(build, busybox, tests, out):
    guests = os.path.join(build, "guest", "arm64")
    entries = [("bin", 0o40755, b""), ("guests", 0o40755, b""),
               ("bin/busybox", 0o100755, open(busybox, "rb").read()),
               ("bin/kvm-arm64-test", 0o100755,
                open(os.path.join(build, "tests", "arm64", "kvm-arm64-test"), "rb").read()),
               ("init", 0o100755, (INIT % {"tests": " ".join(tests)}).encode())]
    entries += [(d, 0o40755, b"") for d in ("dev", "proc", "sys", "tmp")]
    for f in sorted(os.listdir(guests)):
        if f.endswith(".elf"):
            entries.append(("guests/" + f, 0o100644, open(os.path.join(guests, f), "rb").read()))
    with open(out, "wb") as f:
        f.write(linux_assets.cpio_newc(entries))


def check(output):
    """0 when the program ran and every test passed."""
    lines = output.replace("\r", "").splitlines()
    for line in lines:
        print("  " + line)
    rc = [l for l in lines if l.startswith("BED-ARM64-RC=")]
    oks = [l for l in lines if l.startswith("ok ")]
    bad = [l for l in lines if l.startswith("not ok ")]
    if not rc:
        log("FAIL: the test program did not finish in the L1 (no BED-ARM64-RC line)")
        return 1
    if rc[0] != "BED-ARM64-RC=0" or bad or not oks:
        log("FAIL: %d passed, %d failed (%s)" % (len(oks), len(bad), rc[0]))
        return 1
    log("PASS: %d KVM/arm64 backend tests" % len(oks))
    return 0


def main():
    if len(sys.argv) < 2:
        print(__doc__.split("\n\n")[0], file=sys.stderr)
        return 2
    build = os.path.abspath(sys.argv[1])
    tests = sys.argv[2:]
    prog = os.path.join(build, "tests", "arm64", "kvm-arm64-test")
    if not os.path.exists(prog):
        log("FAIL: %s is missing (make cross-arm64)" % prog)
        return 1
    if os.uname().machine == "aarch64" and os.path.exists("/dev/kvm"):
        log("KVM kind: arm64 host: running here")
        r = subprocess.run([prog, os.path.join(build, "guest", "arm64")] + tests,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=L1_TIMEOUT)
        return check(r.stdout + "\nBED-ARM64-RC=%d\n" % r.returncode)
    if not shutil.which(QEMU):
        log("SKIP: no %s (Debian: qemu-system-arm)" % QEMU)
        return 77
    cache = os.path.join(build, "bed-cache")
    os.makedirs(cache, exist_ok=True)
    kernel, busybox = assets(cache)
    work = os.path.join(build, "bed-run-%d" % os.getpid())
    os.makedirs(work)
    try:
        initrd = os.path.join(work, "initrd.cpio")
        initramfs(build, busybox, tests, initrd)
        out = os.path.join(work, "hvc0.out")
        cmd = [QEMU, "-M", "virt,virtualization=on,gic-version=3", "-cpu", "max", "-smp", "2",
               "-m", "1024", "-nographic", "-no-reboot", "-kernel", kernel, "-initrd", initrd,
               "-append", "console=ttyAMA0 panic=-1", "-device", "virtio-serial-pci",
               "-chardev", "file,id=out,path=" + out, "-device", "virtconsole,chardev=out"]
        log("L1: " + " ".join(cmd))
        start = time.monotonic()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
        console, kvm_at = [], None
        try:
            # the console streams until QEMU exits; communicate() bounds it
            import threading
            timer = threading.Timer(L1_TIMEOUT, p.kill)
            timer.start()
            for raw in p.stdout:
                line = raw.decode(errors="replace").rstrip()
                console.append(line)
                if "BED-ARM64-UP" in line and kvm_at is None:
                    kvm_at = time.monotonic() - start
                    log("L1: %s (%.1f s after QEMU started)" % (line, kvm_at))
            p.wait()
            timer.cancel()
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        total = time.monotonic() - start
        log("L1: QEMU ran %.1f s (status %d)" % (total, p.returncode))
        if kvm_at is None or "kvm=yes" not in "\n".join(console):
            log("FAIL: no /dev/kvm in the L1; its console:\n" + "\n".join(console[-40:]))
            return 1
        output = open(out, errors="replace").read() if os.path.exists(out) else ""
        rc = check(output)
        if rc:
            log("the L1's console (last 30 lines):\n" + "\n".join(console[-30:]))
        return rc
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError as e:
        print("FAIL: %s" % e, flush=True)
        sys.exit(1)
