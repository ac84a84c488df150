#!/usr/bin/env python3
"""Disks through `sparkler run --disk` and through a Firecracker config
file's drives: bad input gives one line and status 2; a guest-SDK program
standing in for the kernel (t_run_blk) finds every virtio-blk disk, reads
its serial and the marker the test put in sector 0, writes sector 1 and
says on COM1 what happened; the test checks that and the image files.

usage: disk_test.py SPARKLER GUEST_DIR"""
import json
import os
import re
import subprocess
import sys
import tempfile

SPARKLER, GUEST_DIR = sys.argv[1], sys.argv[2]
GUEST = os.path.join(GUEST_DIR, "t_run_blk.elf")
HALT = os.path.join(GUEST_DIR, "t_halt.elf")
failures = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        failures.append(what)


def run(args, timeout=60):
    return subprocess.run([SPARKLER] + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, text=True)


def image(path, marker, size=1 << 20):
    with open(path, "wb") as f:
        f.write(marker.encode().ljust(size, b"\0"))


def sector(path, n):
    with open(path, "rb") as f:
        f.seek(512 * n)
        return f.read(512)


def bad_input(tmp):
    """Each: status 2, one line on stderr, nothing started."""
    odd = os.path.join(tmp, "odd.img")
    open(odd, "wb").write(b"\0" * 1000)
    ok = os.path.join(tmp, "ok.img")
    image(ok, "x")
    cases = [
        (["--disk", odd], "1000 bytes, not a multiple of 512"),
        (["--disk", "/nonexistent/disk.img"], "No such file"),
        (["--disk", tmp], "drive0"),
        (["--disk", ",ro"], "needs the path"),
        (["--disk", ok] * 9, "too many disks (at most 8)"),
    ]
    for args, needle in cases:
        r = run(["run", "--kernel", HALT] + args)
        lines = r.stderr.strip().splitlines()
        check(r.returncode == 2 and len(lines) == 1 and needle in r.stderr and not r.stdout,
              "run --disk %s -> status 2 and one line naming '%s' (got %d: %r)" %
              (" ".join(args[1:2]), needle, r.returncode, r.stderr.strip()))


def disk_lines(out):
    return {int(m.group(1)): m.group(0) for m in re.finditer(r"disk (\d+): .*", out)}


def two_disks(tmp):
    d0, d1 = os.path.join(tmp, "d0.img"), os.path.join(tmp, "d1.img")
    image(d0, "SPARKLER-DISK-0")
    image(d1, "SPARKLER-DISK-1", 4 << 20)
    r = run(["run", "--kernel", GUEST, "--disk", d0, "--disk", d1 + ",ro", "--timeout", "60"])
    print(r.stdout.strip())
    check(r.returncode == 0, "the guest powered off (status %d, %r)" % (r.returncode,
                                                                       r.stderr.strip()))
    lines = disk_lines(r.stdout)
    check("disks: 2" in r.stdout, "the guest found two disks")
    check(lines.get(0, "").startswith("disk 0: id drive0 (0), 2048 sectors, "
                                      "marker SPARKLER-DISK-0 (0), read-only no, write 0, "
                                      "flush 0"), "drive0: serial, size, sector 0, writable")
    check(lines.get(1, "").startswith("disk 1: id drive1 (0), 8192 sectors, "
                                      "marker SPARKLER-DISK-1 (0), read-only yes, write 1, "
                                      "flush 0"), "drive1: read-only, its write refused (IOERR)")
    check(sector(d0, 1).startswith(b"WRITTEN-BY-GUEST-0\0"), "drive0's sector 1 was written")
    check(sector(d1, 1) == b"\0" * 512, "drive1 is untouched")


def config_file(tmp):
    """The API's drives (here from a config file) are the same devices."""
    root, data = os.path.join(tmp, "root.img"), os.path.join(tmp, "data.img")
    image(root, "ROOT-MARKER")
    image(data, "DATA-MARKER")
    cfg = {
        "boot-source": {"kernel_image_path": GUEST},
        "machine-config": {"vcpu_count": 1, "mem_size_mib": 64},
        "drives": [
            {"drive_id": "rootfs", "path_on_host": root, "is_root_device": True,
             "is_read_only": False},
            {"drive_id": "data", "path_on_host": data, "is_root_device": False,
             "is_read_only": True},
        ],
    }
    path = os.path.join(tmp, "vm.json")
    json.dump(cfg, open(path, "w"))
    r = run(["--config-file", path, "--no-api"])
    print(r.stdout.strip())
    lines = disk_lines(r.stdout)
    check(r.returncode == 0, "the config file's guest powered off (status %d, %r)" %
          (r.returncode, r.stderr.strip()[-300:]))
    check(lines.get(0, "").startswith("disk 0: id rootfs (0), 2048 sectors, marker ROOT-MARKER"),
          "drive 'rootfs' is the first disk, its id the serial")
    check("read-only yes, write 1" in lines.get(1, ""), "drive 'data' is read-only")
    check(sector(root, 1).startswith(b"WRITTEN-BY-GUEST-0"), "rootfs was written")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        if not os.access("/dev/kvm", os.R_OK | os.W_OK):
            print("SKIP: /dev/kvm is not usable")
            sys.exit(77)
        bad_input(tmp)
        two_disks(tmp)
        config_file(tmp)
    if failures:
        print("%d checks failed" % len(failures))
        sys.exit(1)
    print("PASS")


if __name__ == "__main__":
    main()
