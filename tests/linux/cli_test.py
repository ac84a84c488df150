#!/usr/bin/env python3
"""`sparkler run` as a user meets it: bad input gives one line and status 2
with nothing started; the exit statuses of a guest that resets, hangs or is
stopped from the host; --reboot; the terminal put in raw mode and restored
on every exit path; Ctrl-A x. Small guest-SDK programs stand in for the
kernel (they boot through the same ELF loader and 64-bit entry), so this
runs in seconds.

usage: cli_test.py SPARKLER GUEST_DIR"""
import os
import pty
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time

SPARKLER, GUEST_DIR = sys.argv[1], sys.argv[2]
HALT = os.path.join(GUEST_DIR, "t_halt.elf")          # hlt, IF=0: a hung guest
TRIPLE = os.path.join(GUEST_DIR, "t_triple_fault.elf")  # resets at once
failures = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        failures.append(what)


def run(args, timeout=30, **kw):
    return subprocess.run([SPARKLER, "run"] + args, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                          text=True, **kw)


def synthetic_bzimage(path, init_size):
    k = bytearray(5 * 512 + 4096)
    k[0x1F1] = 4
    struct.pack_into("<H", k, 0x1FE, 0xAA55)
    k[0x200], k[0x201] = 0xEB, 0x6A
    k[0x202:0x206] = b"HdrS"
    struct.pack_into("<HBB", k, 0x206, 0x20F, 0, 0)
    k[0x211] = 1
    struct.pack_into("<III", k, 0x22C, 0x7FFFFFFF, 0x200000, 1)
    struct.pack_into("<HI", k, 0x236, 0x7F, 2047)
    struct.pack_into("<QI", k, 0x258, 0x1000000, init_size)
    open(path, "wb").write(k)


def bad_input(tmp):
    """Each: status 2, exactly one line on stderr, nothing on stdout."""
    big = os.path.join(tmp, "big-bzimage")
    synthetic_bzimage(big, 0x8000000)  # needs 16 + 128 MiB
    junk = os.path.join(tmp, "junk")
    open(junk, "wb").write(os.urandom(8192))
    cases = [
        (["--kernel", "/nonexistent/vmlinuz"], "No such file"),
        (["--kernel", tmp], "directory"),
        (["--kernel", junk], "neither an ELF vmlinux nor a bzImage"),
        (["--kernel", big, "--mem", "64M"], "more --mem"),
        (["--kernel", big, "--initrd", "/nonexistent/initrd"], "--initrd"),
        (["--kernel", HALT, "--cpus", "0"], "--cpus 0"),
        (["--kernel", HALT, "--cpus", "256"], "--cpus 256"),
        (["--kernel", HALT, "--cpus", "two"], "--cpus two"),
        (["--kernel", HALT, "--mem", "1G0"], "--mem"),
        (["--kernel", HALT, "--mem", "4M"], "--mem: memory of 4194304 bytes"),
        (["--kernel", HALT, "--cpu-template", "T9"], "--cpu-template"),
        (["--kernel", HALT, "--serial", "file:/nonexistent/dir/log"], "--serial"),
        (["--kernel", HALT, "--bogus"], "--bogus"),
        (["--kernel", HALT, "extra-argument"], "extra-argument"),
        ([], "--kernel is required"),
    ]
    for args, needle in cases:
        r = run(args)
        lines = r.stderr.strip().splitlines()
        check(r.returncode == 2 and len(lines) == 1 and needle in r.stderr and not r.stdout,
              "run %s -> status 2 and one line naming '%s' (got %d: %r)" %
              (" ".join(args), needle, r.returncode, r.stderr.strip()))


def exit_statuses():
    t0 = time.monotonic()
    r = run(["--kernel", TRIPLE])
    check(r.returncode == 3 and "reset" in r.stderr,
          "a triple fault ends with status 3 (reset): %d %r" % (r.returncode, r.stderr.strip()))
    r = run(["--kernel", HALT, "--timeout", "1"])
    took = time.monotonic() - t0
    check(r.returncode == 4 and "--timeout" in r.stderr,
          "a hung guest ends at --timeout with status 4: %d %r" % (r.returncode, r.stderr))
    r = run(["--kernel", TRIPLE, "--reboot", "--timeout", "2"])
    restarts = r.stderr.count("restarting")
    check(r.returncode == 4 and restarts >= 2,
          "--reboot restarts a resetting guest in place (%d restarts in 2 s)" % restarts)
    p = subprocess.Popen([SPARKLER, "run", "--kernel", HALT], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=10)
    check(p.returncode == 5 and "stopping" in err,
          "SIGTERM stops the guest with status 5: %d %r" % (p.returncode, err.strip()))
    print("exit-status checks took %.1f s" % took)


def drain(fd, sink):
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:
            return
        if not data:
            return
        sink.append(data)


def terminal(escape):
    """On a terminal: raw while the guest runs, restored after; Ctrl-A x
    (escape) or SIGTERM ends the run with status 5."""
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    out = []
    reader = threading.Thread(target=drain, args=(master, out), daemon=True)
    reader.start()
    p = subprocess.Popen([SPARKLER, "run", "--kernel", HALT], stdin=slave, stdout=slave,
                         stderr=slave, close_fds=True)
    time.sleep(0.7)
    during = termios.tcgetattr(slave)
    check(not (during[3] & termios.ICANON) and not (during[3] & termios.ECHO),
          "the terminal is raw while the guest runs")
    if escape:
        os.write(master, b"\x01x")
    else:
        p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = -1
    after = termios.tcgetattr(slave)
    os.close(slave)
    how = "Ctrl-A x" if escape else "SIGTERM"
    check(rc == 5, "%s ends the run with status 5 (got %d)" % (how, rc))
    check(after == before, "the terminal is restored after %s" % how)
    os.close(master)


def main():
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        with tempfile.TemporaryDirectory() as tmp:
            bad_input(tmp)
        print("SKIP (partly): /dev/kvm is not usable, only bad-input checks ran")
        sys.exit(1 if failures else 77)
    kind = "pvm" if os.path.isdir("/sys/module/kvm_pvm") else "hardware"
    print("KVM kind: %s" % kind)
    with tempfile.TemporaryDirectory() as tmp:
        bad_input(tmp)
    exit_statuses()
    terminal(escape=True)
    terminal(escape=False)
    if failures:
        print("%d checks failed" % len(failures))
        sys.exit(1)
    print("PASS")


if __name__ == "__main__":
    main()
