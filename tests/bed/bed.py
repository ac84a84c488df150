#!/usr/bin/env python3
"""The real-KVM test bed: sparkler's tests under a real KVM on any x86-64
Linux machine with QEMU.

usage: bed.py SPARKLER BUILD_DIR SCENARIO     (one meson test per scenario)
       bed.py --list

Where it runs, said on every run ("KVM kind: ..."):
- a host with VT-x/AMD-V (kind vmx/svm): the scenario runs here, directly;
- otherwise (PVM, or no /dev/kvm) it runs in the bed: an L1 machine,
  `qemu-system-x86_64 -M q35 -accel tcg -cpu max` (QEMU's TCG emulates
  AMD-V), booting Debian's cloud kernel with an initramfs whose /init loads
  irqbypass, kvm and kvm-amd from the same package: a real KVM (kind svm)
  with nested paging. Without qemu-system-x86_64 the test skips (77).

What goes into the L1: the cloud kernel package has no 9p, and virtiofs
needs a daemon, so the L1 gets everything in its initramfs: busybox, the
modules, the sparkler binary with the shared libraries ldd names, the
scenario's files (the L2 kernel, initramfs, disk images) and its script.
The checks stay on the host, in Python: the script only runs commands and
leaves their output in $OUT, which /init sends back as a base64 tar.gz on
the L1's second serial port; the L1's own console (ttyS0) is kept for the
failure report. So nothing but busybox and sparkler has to run in the L1,
and a check is the same code whichever way the scenario ran.

Adding a test (a few lines): write a SCENARIOS entry below -- `script`
(POSIX sh run in the L1, or here on a real host, with $SPARKLER,
$A (a directory holding `files`), $OUT; `spk NAME ARGS...` runs
`sparkler ARGS` and leaves NAME.log (guest serial), NAME.err, NAME.rc),
`files` (a function of the L2 assets and a scratch directory returning
{name: host path}) and `check` (a function of the output directory and
the scratch directory that calls ok()/fail()) --
and add its name to tests/bed/meson.build. Binaries other than sparkler
(gdb, say) go in with `bins`, their libraries found by ldd.

Every wait is bounded (QEMU by L1_TIMEOUT, each sparkler run by its
--timeout); nothing is timed as an assertion."""
import base64
import fcntl
import glob
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "linux"))
import boot_test  # noqa: E402  (kvm_kind, check_real, check_common)
import linux_assets  # noqa: E402  (download, kernel_package, virtio_modules, cpio_newc, ...)

L1_TIMEOUT = 900  # s: TCG is slow, and CI machines are loaded
L1_MEM = "2560"   # MiB: the L2 guests take 512 MiB each
L1_MODULES = ["irqbypass", "kvm", "kvm_amd", "tun"]

L1_INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /tmp /out
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
for m in $(cat /lib/modules/order); do
	insmod /lib/modules/$m.ko || echo "BED-INSMOD-FAILED $m"
done
ip link set lo up
echo "BED-L1-UP kvm=$([ -c /dev/kvm ] && echo yes || echo no)"
cd /bed && SPARKLER=/bin/sparkler A=/bed OUT=/out sh /bed/run.sh >/out/script.log 2>&1
echo $? >/out/script.rc
echo "BED-SCENARIO-DONE rc=$(cat /out/script.rc)"
stty -F /dev/ttyS1 raw -echo 2>/dev/null
{ echo BED-OUT-BEGIN; tar c -C /out . | gzip | base64; echo BED-OUT-END; } >/dev/ttyS1
sync
echo "BED-L1-DONE"
poweroff -f
"""

# Prepended to every scenario's script.
PRELUDE = """set -u
spk() { name=$1; shift; "$SPARKLER" "$@" </dev/null >"$OUT/$name.log" 2>"$OUT/$name.err"; echo $? >"$OUT/$name.rc"; }
"$SPARKLER" kvm-info >"$OUT/kvm-info" 2>&1
"""

# ---- assertion helpers -------------------------------------------------------------


def ok(cond, msg, log=""):
    boot_test.check(cond, msg, log)


def fail(msg, log=""):
    boot_test.fail(msg, log)


def read(out, name, default=""):
    p = os.path.join(out, name)
    if not os.path.exists(p):
        return default
    return open(p, "rb").read().decode(errors="replace").replace("\r", "")


def run_result(out, name):
    """(guest serial log, sparkler stderr, exit status) of `spk NAME ...`."""
    rc = read(out, name + ".rc").strip()
    return read(out, name + ".log"), read(out, name + ".err"), int(rc) if rc else -1


# ---- scenarios -----------------------------------------------------------------------

BOOT_CMDLINE = "console=ttyS0 reboot=k panic=-1"


def boot_scenario(kind, cpus):
    script = ('spk boot run --kernel "$A/kernel" --initrd "$A/initrd" --cmdline "%s" '
              '--cpus %d --mem 512M --timeout 300\n' % (BOOT_CMDLINE, cpus))

    def files(a, tmp):
        return {"kernel": a["BZIMAGE" if kind == "bzimage" else "VMLINUX"],
                "initrd": a["INITRD"]}

    def check(out, tmp):
        log, err, rc = run_result(out, "boot")
        print("---- sparkler stderr ----\n" + err.strip())
        boot_test.check_real(log, err, rc, BOOT_CMDLINE, cpus)
    return {"script": script, "files": files, "check": check}


# /init of the reboot guest (the virtio initramfs with this /init on top):
# the first boot marks its disk and resets, the second finds the mark and
# powers off.
REBOOT_INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m.ko; done
for i in $(seq 100); do [ -b /dev/vda ] && break; sleep 0.1; done
if [ "$(dd if=/dev/vda bs=1 count=1 2>/dev/null)" = B ]; then
	echo "SPARKLER-BOOT second"
	poweroff -f
fi
printf B | dd of=/dev/vda conv=notrunc 2>/dev/null
sync
echo "SPARKLER-BOOT first"
reboot -f
"""


def overlay_cpio(tmp, base, name, files):
    """base with files ({path: (mode, text)}) on top: the kernel unpacks
    concatenated archives in order, a later file replacing an earlier one."""
    out = os.path.join(tmp, name)
    with open(out, "wb") as f:
        f.write(open(base, "rb").read())
        f.write(linux_assets.cpio_newc([(p, m, t.encode()) for p, (m, t) in files.items()]))
    return out


def reboot_scenario():
    run = ('spk %s run --kernel "$A/kernel" --initrd "$A/initrd" --cmdline "%s" --mem 512M '
           '--timeout 300 --disk "$OUT/%s.disk"%s\n')
    script = ("dd if=/dev/zero of=\"$OUT/reset.disk\" bs=4096 count=1\n" + run % (
        "reset", BOOT_CMDLINE, "reset", "") +
        "dd if=/dev/zero of=\"$OUT/again.disk\" bs=4096 count=1\n" + run % (
        "again", BOOT_CMDLINE, "again", " --reboot"))

    def files(a, tmp):
        return {"kernel": a["BZIMAGE"],
                "initrd": overlay_cpio(tmp, a["INITRD_VIRTIO"], "initrd-reboot",
                                       {"init": (0o100755, REBOOT_INIT)})}

    def check(out, tmp):
        log, err, rc = run_result(out, "reset")
        print("---- reset: sparkler stderr ----\n" + err.strip())
        ok("SPARKLER-BOOT first" in log and "SPARKLER-BOOT second" not in log,
           "without --reboot: one boot, which marked its disk and ran reboot -f", log)
        ok(rc == 3, "without --reboot, reboot -f ends sparkler with status 3 (got %d)" % rc, log)
        log, err, rc = run_result(out, "again")
        print("---- --reboot: sparkler stderr ----\n" + err.strip())
        ok("SPARKLER-BOOT first" in log and "SPARKLER-BOOT second" in log and
           "the guest reset: restarting it" in err,
           "with --reboot the guest booted again and found its mark", log)
        ok(rc == 0, "the second boot powered off: status 0 (got %d)" % rc, log)
    return {"script": script, "files": files, "check": check}


def virtio_scenario():
    """tests/linux/virtio_test.py's guest and checks: the kernel's virtio
    modules, an ext4 disk, a read-only disk, a TAP made in the L1."""
    import virtio_test
    script = ('spk virtio run --kernel "$A/kernel" --initrd "$A/initrd" --cmdline "%s" '
              '--mem 512M --timeout 300 --disk "$A/root.ext4" --disk "$A/data.img,ro" '
              '--net tap=spkbed%%d\n' % BOOT_CMDLINE % (os.getpid() % 10000) +
              'cp "$A/root.ext4" "$A/data.img" "$OUT/"\n')

    def files(a, tmp):
        root, data = virtio_test.make_disks(tmp)
        return {"kernel": a["BZIMAGE"], "initrd": a["INITRD_VIRTIO"], "root.ext4": root,
                "data.img": data}

    def check(out, tmp):
        log, err, rc = run_result(out, "virtio")
        print("---- sparkler stderr ----\n" + err.strip())
        ok("virtio-blk" not in err, "sparkler took both disks (no virtio-blk error)", log)
        boot_test.check_common(log, BOOT_CMDLINE, 1)
        virtio_test.check_real(log, err, rc, os.path.join(out, "root.ext4"),
                               os.path.join(out, "data.img"), True)
    return {"script": script, "files": files, "check": check}


SCENARIOS = {
    "linux-bzimage-1cpu": boot_scenario("bzimage", 1),
    "linux-bzimage-2cpu": boot_scenario("bzimage", 2),
    "linux-vmlinux-2cpu": boot_scenario("vmlinux", 2),
    "linux-reboot": reboot_scenario(),
    "linux-virtio": virtio_scenario(),
}

# ---- assets ----------------------------------------------------------------------------


def l1_assets(cache):
    """The L1 kernel and the L1 initramfs's fixed part (busybox, modules,
    /init), cached under BUILD_DIR/bed-cache; and busybox for L2 initramfs
    files the scenarios build."""
    paths = {"L1_KERNEL": os.path.join(cache, "l1-bzImage"),
             "L1_BASE": os.path.join(cache, "l1-base.cpio"),
             "BUSYBOX": os.path.join(cache, "busybox")}
    stamp = os.path.join(cache, "l1-init.txt")  # /init changed: build again
    if all(os.path.exists(p) for p in paths.values()) and \
            os.path.exists(stamp) and open(stamp).read() == L1_INIT:
        return paths
    debs = os.path.join(cache, "debs")
    shutil.rmtree(debs, ignore_errors=True)
    os.makedirs(debs)
    linux_assets.download(linux_assets.kernel_package(), debs)
    linux_assets.download("busybox-static", debs)
    root = os.path.join(debs, "root")
    for deb in glob.glob(os.path.join(debs, "*.deb")):
        linux_assets.run(["dpkg-deb", "-x", deb, root])
    shutil.copy(glob.glob(os.path.join(root, "boot", "vmlinuz-*"))[0], paths["L1_KERNEL"])
    shutil.copy(os.path.join(root, "bin", "busybox"), paths["BUSYBOX"])
    linux_assets.write_initramfs(paths["BUSYBOX"], L1_INIT,
                                 linux_assets.virtio_modules(root, L1_MODULES),
                                 paths["L1_BASE"], extra_dirs=("tmp", "out", "bed"))
    open(stamp, "w").write(L1_INIT)
    shutil.rmtree(debs, ignore_errors=True)
    return paths


def locked(cache, fn, *args):
    os.makedirs(cache, exist_ok=True)
    with open(os.path.join(cache, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return fn(*args)


def l2_assets(build):
    r = subprocess.run([sys.executable, os.path.join(HERE, "..", "linux", "linux_assets.py"),
                        os.path.join(build, "linux-cache")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        fail("could not prepare the L2 kernel and initramfs: " + r.stderr)
    return dict(line.split("=", 1) for line in r.stdout.split())


def with_libs(binary):
    """[(path in the L1, host file)] for binary and the libraries ldd names."""
    r = subprocess.run(["ldd", binary], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    out = []
    for line in r.stdout.splitlines():
        m = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if m:
            out.append((m.group(1), m.group(1)))
    return out


def scenario_cpio(script, files, bins):
    """The per-run part of the L1 initramfs: /bed/run.sh, /bed/<files>,
    /bin/<bins> and their libraries."""
    entries, dirs = [], set()

    def add(path, mode, data):
        parts = path.strip("/").split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            if d not in dirs:
                dirs.add(d)
                entries.append((d, 0o40755, b""))
        entries.append((path.strip("/"), mode, data))

    add("bed/run.sh", 0o100755, (PRELUDE + script).encode())
    for name, src in files.items():
        add("bed/" + name, 0o100644, open(src, "rb").read())
    libs = {}
    for name, src in bins.items():
        add("bin/" + name, 0o100755, open(src, "rb").read())
        for dst, lib in with_libs(src):
            libs[dst] = lib
    for dst, lib in sorted(libs.items()):
        add(dst, 0o100755, open(os.path.realpath(lib), "rb").read())
    return linux_assets.cpio_newc(entries)


# ---- running -------------------------------------------------------------------------


def run_direct(sc, files, sparkler, tmp):
    """A host with VT-x/AMD-V: the script runs here."""
    a, out = os.path.join(tmp, "a"), os.path.join(tmp, "out")
    os.makedirs(a)
    os.makedirs(out)
    for name, src in files.items():
        os.symlink(os.path.abspath(src), os.path.join(a, name))
    env = dict(os.environ, SPARKLER=os.path.abspath(sparkler), A=a, OUT=out)
    with open(os.path.join(out, "script.log"), "w") as log:
        r = subprocess.run(["sh", "-c", PRELUDE + sc["script"]], cwd=a, env=env,
                           stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                           timeout=L1_TIMEOUT)
    open(os.path.join(out, "script.rc"), "w").write("%d\n" % r.returncode)
    return out, ""


def run_bed(sc, files, sparkler, build, tmp):
    qemu = shutil.which("qemu-system-x86_64")
    l1 = locked(os.path.join(build, "bed-cache"), l1_assets, os.path.join(build, "bed-cache"))
    initrd = os.path.join(tmp, "l1.cpio")
    with open(initrd, "wb") as f:
        f.write(open(l1["L1_BASE"], "rb").read())
        f.write(scenario_cpio(sc["script"], files,
                              dict({"sparkler": sparkler}, **sc.get("bins", {}))))
    console, back = os.path.join(tmp, "l1-console.log"), os.path.join(tmp, "l1-out.txt")
    cmd = [qemu, "-M", "q35", "-accel", "tcg", "-cpu", "max", "-smp", "2", "-m", L1_MEM,
           "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
           "-serial", "file:" + console, "-serial", "file:" + back,
           "-kernel", l1["L1_KERNEL"], "-initrd", initrd,
           "-append", "console=ttyS0 panic=-1 loglevel=4"]
    print("running the L1: " + " ".join(cmd))
    t0 = time.monotonic()
    try:
        subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=L1_TIMEOUT)
    except subprocess.TimeoutExpired:
        fail("the L1 did not finish in %d s" % L1_TIMEOUT, read(tmp, "l1-console.log"))
    l1log = read(tmp, "l1-console.log")
    print("the L1 ran %.1f s" % (time.monotonic() - t0))
    ok("BED-L1-UP kvm=yes" in l1log and "BED-INSMOD-FAILED" not in l1log,
       "the L1 loaded irqbypass, kvm, kvm-amd: /dev/kvm is there", l1log)
    text = read(tmp, "l1-out.txt")
    m = re.search(r"BED-OUT-BEGIN\n(.*?)BED-OUT-END", text, re.S)
    ok(m is not None, "the L1 sent its results back", l1log)
    out = os.path.join(tmp, "out")
    data = base64.b64decode("".join(m.group(1).split()))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as t:
        t.extractall(out)
    return out, l1log


def main():
    if sys.argv[1:] == ["--list"]:
        print("\n".join(SCENARIOS))
        return
    sparkler, build, name = sys.argv[1], sys.argv[2], sys.argv[3]
    sc = SCENARIOS[name]
    host = boot_test.kvm_kind()
    direct = host in ("vmx", "svm") and os.access("/dev/kvm", os.R_OK | os.W_OK)
    if not direct and not shutil.which("qemu-system-x86_64"):
        print("SKIP: KVM kind %s and no qemu-system-x86_64 for the real-KVM bed "
              "(install qemu-system-x86: scripts/deps.sh test)" % host)
        sys.exit(77)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="spk-bed-") as tmp:
        os.makedirs(os.path.join(tmp, "in"))
        files = sc["files"](l2_assets(build), os.path.join(tmp, "in"))
        if direct:
            print("KVM kind: %s (this host's own; no bed needed)" % host)
            out, l1log = run_direct(sc, files, sparkler, tmp)
        else:
            print("this host's KVM kind: %s; running in the bed (QEMU TCG, emulated AMD-V)"
                  % host)
            out, l1log = run_bed(sc, files, sparkler, build, tmp)
        info = read(out, "kvm-info").strip()
        print("KVM kind tested: %s" % info)
        script_log = read(out, "script.log")
        ok(re.match(r"kvm: (vmx|svm) \(usable\)", info) is not None,
           "the scenario ran on a real, usable KVM (%s)" % info, l1log + script_log)
        ok(read(out, "script.rc").strip() == "0", "the scenario's script ran to its end",
           l1log + "\n---- script ----\n" + script_log)
        sc["check"](out, tmp)
    print("PASS %s (%.1f s)" % (name, time.monotonic() - t0))


if __name__ == "__main__":
    main()
