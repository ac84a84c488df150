#!/usr/bin/env python3
"""The arm64 bed: libsparkler's arm64 scenarios under a real KVM/arm64 on an
x86-64 machine.

usage: bed_arm64.py BUILD_ARM64 [TEST...]   (BUILD_ARM64: `make cross-arm64`'s build;
       TEST: arm64-test's test names, default all; BED_ARM64_SCENARIOS=a,b: only those)

An L1 machine, `qemu-system-aarch64 -M virt,virtualization=on,gic-version=3
-cpu max -smp 2 -m 1024` (QEMU's TCG emulates EL2, so KVM/arm64 runs in it,
in VHE mode), boots Debian's arm64 cloud kernel from bookworm-backports
(6.12: the SMCCC filter that forwards HVC to the monitor needs 6.4+;
bookworm's own 6.1 has no filter) with an initramfs holding busybox-static
and what the scenarios need (scenarios(): the static cross-built
arm64-test with the arm64 test guests, ...). Packages
come through scripts/arm64-apt.sh (a private apt state: nothing on this
machine is configured or installed), cached under BUILD_ARM64/bed-cache.
On an arm64 host with /dev/kvm the scenarios run directly instead.

The L1's /init runs each scenario in turn, each bounded by busybox's
timeout (a hung guest fails its scenario, the others still run), and
writes their output between markers to a virtio console (hvc0) that QEMU
keeps in a file; the checks stay here, one PASS/FAIL line per scenario.
The time from
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

L1_TIMEOUT = int(os.environ.get("BED_ARM64_TIMEOUT", "540"))  # s: the whole L1 run, TCG on a loaded 2-core machine
QEMU = "qemu-system-aarch64"
CROSS_LIBC = "/usr/aarch64-linux-gnu/lib"  # Debian's libc6-arm64-cross (gcc-aarch64-linux-gnu)


class Scenario:
    """One thing the L1 runs, in order, after its /dev/kvm is up.

    name:    printed and used as the marker (BED-ARM64-BEGIN name ...).
    argv:    the command in the L1 (paths inside the initramfs).
    files:   (path in the initramfs, file on this host, mode) to add; a
             directory on this host adds every *.elf in it.
    timeout: seconds the L1's busybox timeout gives the command (KILL):
             a hung guest fails its scenario, and the next ones run.
    check:   check(output, rc) -> None when it passed, else why not.
    """

    def __init__(self, name, argv, files, timeout, check):
        self.name, self.argv, self.files = name, argv, files
        self.timeout, self.check = timeout, check


def check_tap(output, rc):
    """A test program's "ok N - name" lines: all ok, at least one, status 0."""
    lines = output.splitlines()
    oks = [l for l in lines if l.startswith("ok ")]
    bad = [l for l in lines if l.startswith("not ok ")]
    if rc != 0 or bad or not oks:
        return "%d passed, %d failed, status %d%s" % (
            len(oks), len(bad), rc, "".join("\n    " + l for l in bad))
    return None


def check_demo(output, rc):
    """sparkler sandbox --stats a64_demo.elf: the demo's lines, status 0,
    the exit table."""
    want = ["Hello from a sparkler guest on arm64 vCPU 0!",
            "sandbox device: magic 58424e5350534b53, 2 vCPUs",
            "timer: the virtual timer's interrupt (PPI 27) arrived",
            "vCPU 1 summed 1..100 = 5050", "Goodbye.", "| HYPERCALL", "| MMIO"]
    missing = [w for w in want if w not in output]
    if rc != 0 or missing:
        return "status %d, missing %s" % (rc, missing)
    return None


# sparkler's arm64 refusals, one command each: "name rc=N" lines
REFUSALS = """
/bin/sparkler sandbox /guests/a64_nisv.elf; echo "nisv rc=$?"
/bin/sparkler sandbox --timeout 3 /guests/a64_spin.elf; echo "spin rc=$?"
/bin/sparkler run --kernel /bin/sparkler; echo "run rc=$?"
/bin/sparkler --api-sock /tmp/api.sock; echo "api rc=$?"
/bin/sparkler sandbox --gdb tcp:1234 /guests/a64_demo.elf; echo "gdb rc=$?"
/bin/sparkler sandbox --cpus 33 /guests/a64_demo.elf; echo "cpus rc=$?"
/bin/sparkler sandbox /bin/sparkler; echo "notelf rc=$?"
/bin/sparkler kvm-info; echo "kvm-info rc=$?"
"""


def check_refusals(output, rc):
    """Each refusal's status and message (vmm.h: 2 usage, 4 crash/timeout)."""
    want = {"nisv": (4, "unhandled exit INTERNAL_ERROR"),
            "spin": (4, "ran past its --timeout"),
            "run": (2, "not an arm64 Linux Image"),  # run works: /bin/sparkler is no Image
            "api": (2, "API (--api-sock, --config-file): not on arm64 yet"),
            "gdb": (2, "--gdb: not on arm64 yet"),
            "cpus": (2, "at most 32"),
            "notelf": (2, "elf:"),
            "kvm-info": (0, "kvm: arm64 (usable)")}
    bad = []
    for name, (status, text) in want.items():
        if "%s rc=%d" % (name, status) not in output or text not in output:
            bad.append("%s: want status %d and %r" % (name, status, text))
    return "; ".join(bad) or None


def scenarios(build, tests):
    """The arm64 bed's scenarios, in the order the L1 runs them. Others
    append theirs here (a Linux boot, ...)."""
    guests = ("guests", os.path.join(build, "guest", "arm64"), 0o644)
    sparkler = [("bin/sparkler", os.path.join(build, "src", "vmm", "sparkler"), 0o755),
                # the program's shared libraries: glibc of Debian's cross toolchain
                ("lib/ld-linux-aarch64.so.1", os.path.join(CROSS_LIBC, "ld-linux-aarch64.so.1"),
                 0o755),
                ("lib/libc.so.6", os.path.join(CROSS_LIBC, "libc.so.6"), 0o755), guests]
    return [
        Scenario("guest-tests", ["/bin/arm64-test", "/guests"] + tests,
                 [("bin/arm64-test", os.path.join(build, "tests", "arm64", "arm64-test"), 0o755),
                  guests],
                 240, check_tap),
        Scenario("sandbox-demo", ["/bin/sparkler", "sandbox", "--stats", "/guests/a64_demo.elf"],
                 sparkler, 90, check_demo),
        Scenario("sandbox-refusals", ["/bin/sh", "-c", REFUSALS], sparkler, 150,
                 check_refusals),
    ] + linux_scenarios(build, sparkler)


# ---- Linux boot: `sparkler run` boots Debian's arm64 kernel to init ----------

L2_INIT = """#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev
[ -c /dev/hvc0 ] && echo "A64LINUX-HVC0 virtio console on PCI" >/dev/hvc0
/bin/busybox dmesg | /bin/busybox grep -E 'earlycon:|ttyS0 at MMIO|psci: PSCIv|smp: Brought up|rtc0'
echo "A64LINUX-INIT cpus=$(/bin/busybox grep -c ^processor /proc/cpuinfo) date=$(/bin/busybox date +%s)"
/bin/busybox poweroff -f
"""

# The guest's own bound (sparkler --timeout, status 4) sits inside the
# L1's (busybox timeout, KILL): a hung boot fails with sparkler's report.
# Measured in the bed: see README, "arm64 Linux".
L2_TIMEOUT = 240


def linux_guest(build):
    """(Image, initramfs) of the Linux boot scenarios: the L1's own Debian
    kernel (an uncompressed arm64 Image) and a busybox initramfs whose
    /init prints a marker and the CPU count, then powers off (PSCI
    SYSTEM_OFF). None where the bed cannot run (no QEMU, not an arm64 host
    with /dev/kvm): nothing is downloaded then."""
    native = os.uname().machine == "aarch64" and os.path.exists("/dev/kvm")
    if not native and not shutil.which(QEMU):
        return None
    cache = os.path.join(build, "bed-cache")
    os.makedirs(cache, exist_ok=True)
    kernel, busybox = assets(cache)
    initrd = os.path.join(cache, "linux-initrd.cpio")
    entries = [("bin", 0o40755, b""), ("proc", 0o40755, b""), ("dev", 0o40755, b""),
               ("bin/busybox", 0o100755, open(busybox, "rb").read()),
               ("init", 0o100755, L2_INIT.encode())]
    with open(initrd + ".tmp", "wb") as f:
        f.write(linux_assets.cpio_newc(entries))
    os.rename(initrd + ".tmp", initrd)
    return kernel, initrd


def check_linux(cpus, virtio):
    made = time.time()

    def check(output, rc):
        lines = output.splitlines()
        # what the kernel found through the device tree (init greps its log:
        # the boot is "quiet", a verbose console costs a minute of TCG here)
        for want in ("earlycon: ns16550a0 at MMIO 0x0000000009000000",
                     "9000000.uart: ttyS0 at MMIO 0x9000000", "psci: PSCIv",
                     "smp: Brought up 1 node, %d CPU" % cpus,
                     "rtc-pl031 9010000.pl031: registered as rtc0"):
            if not any(want in l for l in lines):
                return "no %r in the guest's log" % want
        marks = [l for l in lines if l.startswith("A64LINUX-INIT ")]
        if not marks:
            return "init never ran (no A64LINUX-INIT line), sparkler status %d" % rc
        if marks[0].split()[1] != "cpus=%d" % cpus:
            return "init saw %s, want cpus=%d" % (marks[0].split()[1], cpus)
        # the PL031 gave the guest the L1's clock, which is this host's:
        # inside this run (a minute's margin either way for the clocks)
        date = int(marks[0].split()[2][len("date="):])
        if not made - 60 <= date <= time.time() + 60:
            return "the guest's clock says %d, outside this run (%d..%d)" % (
                date, made, time.time())
        if virtio and "A64LINUX-HVC0 virtio console on PCI" not in lines:
            return "nothing from init on hvc0 (virtio-console on the PCIe host, INTx)"
        if rc != 0:
            return "sparkler ended with status %d, want 0 (PSCI SYSTEM_OFF)" % rc
        return None
    return check


def linux_scenarios(build, sparkler):
    guest = linux_guest(build)
    if guest is None:
        return []
    kernel, initrd = guest
    files = [f for f in sparkler if f[0] != "guests"] + [
        ("linux-Image", kernel, 0o644), ("linux-initrd", initrd, 0o644)]
    # 2 vCPUs also with a virtio console (Debian's arm64 kernel has
    # virtio-pci and virtio-console built in; blk, net and rng are modules)
    return [Scenario("linux-boot-%dcpu" % n,
                     ["/bin/sparkler", "run", "--kernel", "/linux-Image", "--initrd",
                      "/linux-initrd", "--cpus", str(n), "--mem", "256M", "--timeout",
                      str(L2_TIMEOUT), "--cmdline", "console=ttyS0 earlycon quiet panic=-1"]
                     + (["--console-virtio"] if n == 2 else []),
                     files, L2_TIMEOUT + 30, check_linux(n, n == 2))
            for n in (1, 2)] + [
        Scenario("linux-run-refusals", ["/bin/busybox", "sh", "-c", LINUX_REFUSALS], files, 120,
                 check_linux_refusals)]


# What `sparkler run` refuses on arm64, each with status 2 and a message,
# before any guest runs (the last two get as far as loading the kernel).
LINUX_REFUSALS_CASES = [
    ("--cpu-template minimal", "CPU templates: not on arm64"),
    ("--no-pvh", "--no-pvh (an x86-64 boot path): not on arm64"),
    ("--gdb tcp:1234", "--gdb: not on arm64 yet"),
    ("--cpus 33", "more than 32 vCPUs: not on arm64"),
    ("--mem 32M", "does not fit in 32 MiB of RAM"),
]
LINUX_REFUSALS_CASES = [("--kernel /linux-Image " + a, w) for a, w in LINUX_REFUSALS_CASES] + [
    ("--restore /linux-initrd", "not a sparkler snapshot"),
    ("--kernel /linux-initrd --mem 64M", "not an arm64 Linux Image"),
]
LINUX_REFUSALS = "".join(
    "/bin/sparkler run %s --timeout 60 2>&1; echo \"REFUSAL-RC %d=$?\"\n"
    % (args, i) for i, (args, _) in enumerate(LINUX_REFUSALS_CASES))


def check_linux_refusals(output, rc):
    lines = output.splitlines()
    for i, (args, want) in enumerate(LINUX_REFUSALS_CASES):
        if "REFUSAL-RC %d=2" % i not in lines:
            return "sparkler run %s: not status 2" % args
        if not any(want in l for l in lines):
            return "sparkler run %s: no %r" % (args, want)
    return None


INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /tmp
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "BED-ARM64-UP kvm=$([ -c /dev/kvm ] && echo yes || echo no) uptime=$(cut -d' ' -f1 /proc/uptime)"
{
	dmesg | grep -E 'kvm \\[1\\]|Linux version'
%(runs)s
	echo "BED-ARM64-END"
} >/dev/hvc0 2>&1
sync
echo "BED-ARM64-DONE"
poweroff -f
"""

RUN = """	echo "BED-ARM64-BEGIN %(name)s"
	timeout -s KILL %(timeout)d %(argv)s </dev/null 2>&1
	echo "BED-ARM64-RC %(name)s=$?"
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


def shell_quote(a):
    return "'" + a.replace("'", "'\\''") + "'"


def initramfs(scens, busybox, out):
    entries = [("bin", 0o40755, b""), ("bin/busybox", 0o100755, open(busybox, "rb").read())]
    entries += [(d, 0o40755, b"") for d in ("dev", "proc", "sys", "tmp")]
    seen = {"bin"}
    for sc in scens:
        for dest, src, mode in sc.files:
            if os.path.isdir(src):
                if dest not in seen:
                    entries.append((dest, 0o40755, b""))
                    seen.add(dest)
                for f in sorted(os.listdir(src)):
                    if f.endswith(".elf") and dest + "/" + f not in seen:
                        entries.append((dest + "/" + f, 0o100000 | mode,
                                        open(os.path.join(src, f), "rb").read()))
                        seen.add(dest + "/" + f)
            elif dest not in seen:
                parent = os.path.dirname(dest)
                if parent and parent not in seen:
                    entries.append((parent, 0o40755, b""))
                    seen.add(parent)
                entries.append((dest, 0o100000 | mode, open(src, "rb").read()))
                seen.add(dest)
    runs = "".join(RUN % {"name": sc.name, "timeout": sc.timeout,
                          "argv": " ".join(shell_quote(a) for a in sc.argv)} for sc in scens)
    entries.append(("init", 0o100755, (INIT % {"runs": runs}).encode()))
    with open(out, "wb") as f:
        f.write(linux_assets.cpio_newc(entries))


def split_output(output):
    """{scenario: (its output, its status or None when it never finished)}"""
    res, cur, buf = {}, None, []
    for line in output.replace("\r", "").splitlines():
        if line.startswith("BED-ARM64-BEGIN "):
            cur, buf = line.split(" ", 1)[1], []
            res[cur] = ("", None)
        elif line.startswith("BED-ARM64-RC ") and cur:
            name, rc = line.split(" ", 1)[1].rsplit("=", 1)
            res[cur] = ("\n".join(buf), int(rc))
            cur = None
        elif cur:
            buf.append(line)
            res[cur] = ("\n".join(buf), None)
    return res


def check(scens, output):
    """0 when every scenario ran and passed; each result printed."""
    for line in output.replace("\r", "").splitlines():
        print("  " + line)
    got = split_output(output)
    failed = 0
    for sc in scens:
        out, rc = got.get(sc.name, ("", None))
        if rc is None:
            why = "did not finish in the L1" if sc.name in got else "did not run"
        elif rc == 137:
            why = "killed after %d s (hung)" % sc.timeout
        else:
            why = sc.check(out, rc)
        if why:
            failed += 1
            log("FAIL: %s: %s" % (sc.name, why))
        else:
            log("PASS: %s" % sc.name)
    return 1 if failed else 0


def native_argv(sc):
    """A scenario's argv with the initramfs paths mapped to this host's
    (also inside a shell script's text)."""
    paths = sorted(((("/" + dest), src) for dest, src, _ in sc.files), key=lambda p: -len(p[0]))
    out = []
    for a in sc.argv:
        for dest, src in paths:
            a = a.replace(dest, src)
        out.append(a)
    return out


def run_native(scens):
    """On an arm64 host with /dev/kvm: every scenario here, bounded."""
    log("KVM kind: arm64 host: running here")
    output = []
    for sc in scens:
        output.append("BED-ARM64-BEGIN " + sc.name)
        try:
            r = subprocess.run(native_argv(sc), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, text=True, timeout=sc.timeout)
            output += [r.stdout, "BED-ARM64-RC %s=%d" % (sc.name, r.returncode)]
        except subprocess.TimeoutExpired as e:
            output += [(e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes)
                       else (e.stdout or ""), "BED-ARM64-RC %s=137" % sc.name]
    return check(scens, "\n".join(output) + "\n")


def main():
    if len(sys.argv) < 2:
        print(__doc__.split("\n\n")[0], file=sys.stderr)
        return 2
    build = os.path.abspath(sys.argv[1])
    scens = scenarios(build, sys.argv[2:])
    only = os.environ.get("BED_ARM64_SCENARIOS")
    if only:
        scens = [sc for sc in scens if sc.name in only.split(",")]
    for sc in scens:
        for _, src, _ in sc.files:
            if not os.path.exists(src):
                log("FAIL: %s is missing (make cross-arm64)" % src)
                return 1
    if os.uname().machine == "aarch64" and os.path.exists("/dev/kvm"):
        return run_native(scens)
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
        initramfs(scens, busybox, initrd)
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
        rc = check(scens, output)
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
