#!/usr/bin/env python3
"""Build the small test kernel once per machine and cache it under the build
folder: Debian's linux-source package, `make allnoconfig` with the
checked-in fragment tests/linux/small-kernel.config, bzImage and vmlinux
(the PVH entry), plus an initramfs with busybox-static and the boot tests'
/init (no modules: the kernel has none).

usage: small_kernel.py CACHE_DIR   (prints the paths as KEY=VALUE lines)

The cache key is the source package's version and the fragment's hash, so
editing the config builds again. The build runs under `nice -n 10` with one
job per CPU; its wall time goes to build-seconds next to the images. Only
Debian packages are used (apt-get download, dpkg-deb -x); one process at a
time builds (flock). Build tools (flex, bison, bc, libelf-dev, lz4) come from
scripts/deps.sh test."""
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import linux_assets  # noqa: E402  (download, run, the initramfs writer and /init)

FRAGMENT = os.path.join(HERE, "small-kernel.config")
SOURCE_PACKAGE = "linux-source-6.1"


def source_version():
    out = linux_assets.run(["apt-cache", "policy", SOURCE_PACKAGE])
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Candidate:") and line.split()[1] != "(none)":
            return line.split()[1]
    linux_assets.run(["apt-get", "update"])
    out = linux_assets.run(["apt-cache", "policy", SOURCE_PACKAGE])
    for line in out.splitlines():
        if line.strip().startswith("Candidate:"):
            return line.split()[1]
    raise RuntimeError("apt-cache knows no %s" % SOURCE_PACKAGE)


def build(out_dir, work):
    """Fetch, configure and build into work; copy the images to out_dir."""
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    linux_assets.download(SOURCE_PACKAGE, work)
    linux_assets.download("busybox-static", work)
    root = os.path.join(work, "root")
    for deb in glob.glob(os.path.join(work, "*.deb")):
        linux_assets.run(["dpkg-deb", "-x", deb, root])
    tarball = glob.glob(os.path.join(root, "usr", "src", "linux-source-*.tar.xz"))[0]
    linux_assets.run(["tar", "xJf", tarball, "-C", work])
    src = [d for d in glob.glob(os.path.join(work, "linux-source-*")) if os.path.isdir(d)][0]
    obj = os.path.join(work, "obj")
    jobs = str(os.cpu_count() or 1)
    t0 = time.monotonic()
    linux_assets.run(["make", "-s", "-C", src, "O=" + obj, "allnoconfig",
                      "KCONFIG_ALLCONFIG=" + FRAGMENT])
    # the fragment must have been taken: a symbol the config lost is an error
    config = open(os.path.join(obj, ".config")).read()
    for line in open(FRAGMENT):
        line = line.strip()
        if line.startswith("CONFIG_") and line.endswith("=y") and line not in config:
            raise RuntimeError("the kernel config lost %s (a dependency missing?)" % line)
    log = linux_assets.run(["nice", "-n", "10", "make", "-C", src, "O=" + obj, "-j" + jobs,
                            "bzImage"])
    took = time.monotonic() - t0
    shutil.copy(os.path.join(obj, "arch", "x86", "boot", "bzImage"),
                os.path.join(out_dir, "bzImage"))
    shutil.copy(os.path.join(obj, "vmlinux"), os.path.join(out_dir, "vmlinux"))
    shutil.copy(os.path.join(obj, ".config"), os.path.join(out_dir, "config"))
    open(os.path.join(out_dir, "build.log"), "w").write(log[-20000:])
    linux_assets.write_initramfs(os.path.join(root, "bin", "busybox"), linux_assets.INIT, [],
                                 os.path.join(out_dir, "initramfs.cpio"))
    with open(os.path.join(out_dir, "build-seconds"), "w") as f:
        f.write("%.0f\n" % took)
    shutil.rmtree(work, ignore_errors=True)


def prepare(cache):
    key = hashlib.sha256(open(FRAGMENT, "rb").read() + source_version().encode()).hexdigest()[:12]
    out_dir = os.path.join(cache, "small-" + key)
    paths = {"SMALL_BZIMAGE": os.path.join(out_dir, "bzImage"),
             "SMALL_VMLINUX": os.path.join(out_dir, "vmlinux"),
             "SMALL_INITRD": os.path.join(out_dir, "initramfs.cpio")}
    if not all(os.path.exists(p) for p in paths.values()):
        tmp = out_dir + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        build(tmp, os.path.join(cache, "small-work"))
        shutil.rmtree(out_dir, ignore_errors=True)
        os.rename(tmp, out_dir)
    paths["SMALL_BUILD_SECONDS"] = open(os.path.join(out_dir, "build-seconds")).read().strip()
    return paths


def main():
    linux_assets.prepare_locked(".small-lock", prepare)


if __name__ == "__main__":
    try:
        main()
    except (RuntimeError, IndexError, OSError) as e:
        print("small_kernel: %s" % e, file=sys.stderr)
        sys.exit(1)
