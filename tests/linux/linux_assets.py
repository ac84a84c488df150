#!/usr/bin/env python3
"""Fetch and prepare what the Linux boot tests need, cached under the build
folder: Debian's cloud kernel (bzImage and the vmlinux inside it) and an
initramfs with busybox-static, the ACPI button module and an /init that
loads it, prints a marker with the CPU count, hits the boot timer and powers
off; and a second initramfs for the
virtio test with the kernel's own virtio modules (virtio_pci, virtio_blk,
virtio_net and what they need, decompressed if the package compresses them)
and an /init that loads them, mounts the first disk, writes and reads a
file, looks at the second disk and the network, and powers off.

usage: linux_assets.py CACHE_DIR   (prints the paths as KEY=VALUE lines)
Only Debian packages are used (apt-get download, dpkg-deb -x); one process
at a time prepares the cache (flock)."""
import fcntl
import glob
import os
import re
import shutil
import struct
import subprocess
import sys

INIT = """#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
for m in $(/bin/busybox cat /lib/modules/order); do
	/bin/busybox insmod /lib/modules/$m.ko || echo "SPARKLER-INSMOD-FAILED $m"
done
n=$(/bin/busybox grep -c '^processor' /proc/cpuinfo)
echo "SPARKLER-INIT-OK cpus=$n"
/bin/busybox devmem 0xfe000000 8 123
/bin/busybox poweroff -f
"""


# /init of the virtio initramfs: every step prints a SPARKLER-... line the
# test looks for (tests/linux/virtio_test.py).
INIT_VIRTIO = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /mnt
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "SPARKLER-VIRTIO-INIT"
for m in $(cat /lib/modules/order); do
	insmod /lib/modules/$m.ko || echo "SPARKLER-INSMOD-FAILED $m"
done
echo "SPARKLER-MODULES-LOADED $(cat /lib/modules/order | tr '\\n' ' ')"
for i in $(seq 50); do [ -b /dev/vda ] && break; sleep 0.1; done
for d in vda vdb; do
	[ -b /dev/$d ] && echo "SPARKLER-DISK $d serial=$(cat /sys/block/$d/serial) sectors=$(cat /sys/block/$d/size) ro=$(cat /sys/block/$d/ro)"
done
if mount -t ext4 /dev/vda /mnt; then
	echo "SPARKLER-MOUNT-OK"
	echo "SPARKLER-READ $(cat /mnt/hello.txt)"
	echo "written by the guest" > /mnt/from-guest.txt
	sync
	echo "SPARKLER-READBACK $(cat /mnt/from-guest.txt)"
	umount /mnt && echo "SPARKLER-UMOUNT-OK"
fi
[ -b /dev/vdb ] && echo "SPARKLER-VDB $(dd if=/dev/vdb bs=16 count=1 2>/dev/null)"
if [ -e /sys/class/net/eth0 ]; then
	ip link set eth0 up
	ip addr add 10.0.2.15/24 dev eth0
	echo "SPARKLER-NET eth0 $(cat /sys/class/net/eth0/address) $(cat /sys/class/net/eth0/operstate)"
fi
n=$(grep -c '^processor' /proc/cpuinfo)
echo "SPARKLER-INIT-OK cpus=$n"
devmem 0xfe000000 8 123
poweroff -f
"""

# The virtio modules, as Debian 12's cloud kernel has them (=m); the order
# they load in comes from each module's own depends= (.modinfo).
VIRTIO_MODULES = ["virtio", "virtio_ring", "virtio_pci", "virtio_pci_modern_dev",
                  "virtio_pci_legacy_dev", "virtio_blk", "virtio_net", "net_failover",
                  "failover"]
# The ACPI button driver (=m there too): the boot test looks for the DSDT's
# PNP0C0C power button in the kernel's log.
BOOT_MODULES = ["button"]


def run(cmd, cwd=None):
    r = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), r.returncode, r.stdout[-2000:]))
    return r.stdout


def download(pkg, dest):
    """apt-get download into dest; refresh the package lists once if needed."""
    try:
        run(["apt-get", "download", pkg], cwd=dest)
    except RuntimeError:
        run(["apt-get", "update"])
        run(["apt-get", "download", pkg], cwd=dest)


def kernel_package():
    out = run(["apt-cache", "depends", "linux-image-cloud-amd64"])
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Depends: linux-image-") and line.split()[1][12:13].isdigit():
            return line.split()[1]
    raise RuntimeError("apt-cache did not name the cloud kernel package:\n" + out)


def extract_vmlinux(bzimage, out):
    """The kernel's own compressed payload (payload_offset/length in the
    setup header), decompressed with the tool its magic names."""
    data = open(bzimage, "rb").read()
    setup = (data[0x1F1] or 4) * 512 + 512
    off, length = struct.unpack_from("<II", data, 0x248)
    payload = data[setup + off: setup + off + length]
    tools = [
        (b"\x02\x21\x4c\x18", ["lz4", "-d", "-c"]),
        (b"\xfd7zXZ", ["xz", "-d", "-c"]),
        (b"\x1f\x8b", ["gzip", "-d", "-c"]),
        (b"\x28\xb5\x2f\xfd", ["zstd", "-d", "-c"]),
    ]
    for magic, cmd in tools:
        if payload.startswith(magic):
            r = subprocess.run(cmd, input=payload, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            # the kernel's lz4 and xz streams carry trailing size bytes some
            # tools complain about; what matters is a whole ELF
            if r.stdout[:4] != b"\x7fELF":
                raise RuntimeError("%s gave no ELF: %s" % (cmd[0], r.stderr.decode()[-500:]))
            open(out, "wb").write(r.stdout)
            return
    raise RuntimeError("unknown kernel compression, payload starts %s" % payload[:6].hex())


def cpio_newc(entries):
    """A newc cpio archive of (name, mode, data) entries."""
    out = bytearray()
    for ino, (name, mode, data) in enumerate(entries + [("TRAILER!!!", 0, b"")], 1):
        nameb = name.encode() + b"\0"
        hdr = "070701" + "".join("%08X" % v for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nameb), 0))
        out += hdr.encode() + nameb
        out += b"\0" * (-len(out) % 4)
        out += data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


def read_module(path):
    """A module's bytes, decompressed when the package ships .ko.xz/.ko.zst/.ko.gz."""
    data = open(path, "rb").read()
    for ext, cmd in ((".xz", ["xz", "-d", "-c"]), (".zst", ["zstd", "-d", "-c"]),
                     (".gz", ["gzip", "-d", "-c"])):
        if path.endswith(ext):
            r = subprocess.run(cmd, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            if r.returncode != 0:
                raise RuntimeError("%s %s: %s" % (cmd[0], path, r.stderr.decode()[-300:]))
            return r.stdout
    return data


def virtio_modules(root, wanted=VIRTIO_MODULES):
    """[(name, bytes)] of the wanted modules (VIRTIO_MODULES) and their
    dependencies, in load order."""
    found = {}
    for path in glob.glob(os.path.join(root, "lib", "modules", "*", "kernel", "**", "*.ko*"),
                          recursive=True):
        name = os.path.basename(path).split(".ko")[0].replace("-", "_")
        found[name] = path
    missing = [m for m in wanted if m not in found and m not in builtin(root)]
    if missing:
        raise RuntimeError("the kernel package has no module %s" % ", ".join(missing))
    order, data = [], {}

    def visit(name, stack):
        if name in data or name not in found:
            return  # loaded already, or built in
        if name in stack:
            raise RuntimeError("module dependency loop at %s" % name)
        data[name] = None
        blob = read_module(found[name])
        m = re.search(rb"(?:^|\0)depends=([^\0]*)\0", blob)
        for dep in (m.group(1).decode().split(",") if m and m.group(1) else []):
            visit(dep.replace("-", "_"), stack + [name])
        data[name] = blob
        order.append(name)

    for m in wanted:
        visit(m, [])
    return [(n, data[n]) for n in order]


def builtin(root):
    names = set()
    for path in glob.glob(os.path.join(root, "lib", "modules", "*", "modules.builtin")):
        for line in open(path):
            names.add(os.path.basename(line.strip()).split(".ko")[0].replace("-", "_"))
    return names


def write_initramfs(busybox, init, modules, out, extra_dirs=()):
    """A newc cpio: busybox, /init, the mount points, and modules (name, blob)
    under /lib/modules with an 'order' file for /init to load them by."""
    entries = [
        ("bin", 0o40755, b""),
        ("bin/busybox", 0o100755, open(busybox, "rb").read()),
        ("init", 0o100755, init.encode()),
    ]
    entries += [(d, 0o40755, b"") for d in ("dev", "proc", "sys") + tuple(extra_dirs)]
    entries += [
        ("lib", 0o40755, b""),
        ("lib/modules", 0o40755, b""),
        ("lib/modules/order", 0o100644, "".join(n + "\n" for n, _ in modules).encode()),
    ]
    entries += [("lib/modules/%s.ko" % n, 0o100644, blob) for n, blob in modules]
    open(out, "wb").write(cpio_newc(entries))


def make_initramfs_virtio(busybox, modules, out):
    write_initramfs(busybox, INIT_VIRTIO, modules, out, extra_dirs=("mnt",))


def make_initramfs(busybox, modules, out):
    write_initramfs(busybox, INIT, modules, out)


def prepare(cache):
    os.makedirs(cache, exist_ok=True)
    paths = {k: os.path.join(cache, v) for k, v in
             # initramfs-button: a new name for the initramfs with the button
             # module, so that a cache from before is prepared again
             (("BZIMAGE", "bzImage"), ("VMLINUX", "vmlinux"), ("INITRD", "initramfs-button.cpio"),
              ("INITRD_VIRTIO", "initramfs-virtio.cpio"))}
    if all(os.path.exists(p) for p in paths.values()):
        return paths
    debs = os.path.join(cache, "debs")
    shutil.rmtree(debs, ignore_errors=True)
    os.makedirs(debs)
    download(kernel_package(), debs)
    download("busybox-static", debs)
    root = os.path.join(debs, "root")
    for deb in glob.glob(os.path.join(debs, "*.deb")):
        run(["dpkg-deb", "-x", deb, root])
    vmlinuz = glob.glob(os.path.join(root, "boot", "vmlinuz-*"))[0]
    shutil.copy(vmlinuz, paths["BZIMAGE"] + ".tmp")
    extract_vmlinux(vmlinuz, paths["VMLINUX"] + ".tmp")
    make_initramfs(os.path.join(root, "bin", "busybox"), virtio_modules(root, BOOT_MODULES),
                   paths["INITRD"] + ".tmp")
    make_initramfs_virtio(os.path.join(root, "bin", "busybox"), virtio_modules(root),
                          paths["INITRD_VIRTIO"] + ".tmp")
    for p in paths.values():
        os.rename(p + ".tmp", p)
    with open(os.path.join(cache, "kernel-version"), "w") as f:
        f.write(os.path.basename(vmlinuz)[len("vmlinuz-"):] + "\n")
    shutil.rmtree(debs, ignore_errors=True)
    return paths


def prepare_locked(lock_name, prepare_fn):
    """Run prepare_fn(CACHE_DIR from argv) under an flock in the cache and
    print what it returns as KEY=VALUE lines (one process at a time)."""
    cache = os.path.abspath(sys.argv[1])
    os.makedirs(cache, exist_ok=True)
    with open(os.path.join(cache, lock_name), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        paths = prepare_fn(cache)
    for k, v in paths.items():
        print("%s=%s" % (k, v))


def main():
    prepare_locked(".lock", prepare)


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as e:
        print("linux_assets: %s" % e, file=sys.stderr)
        sys.exit(1)
