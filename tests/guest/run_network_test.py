#!/usr/bin/env python3
"""`sparkler run --net ... --vsock ...`, and the same VM from a Firecracker
config file (network-interfaces, vsock): a guest-SDK program stands in for
the kernel (guest/tests/net_run.c) and talks to this script over vsock
both ways and sends a frame to the TAP, which sparkler makes, brings up
and (having made it) removes again. Bad --net and --vsock options give one
line and status 2.

Skips (77) without /dev/kvm, or where TAPs cannot be made (not root).

usage: run_network_test.py SPARKLER GUEST_DIR"""
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading

SPARKLER, GUEST_DIR = sys.argv[1], sys.argv[2]
GUEST = os.path.join(GUEST_DIR, "t_net_run.elf")
MAC = "06:00:ac:10:00:02"
NF_TO_HOST = 0x88B5
failures = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)


def nf_frame_ok(f, seq):
    """The guest's test frame seq (guest/tests/net_frames.h), byte by byte."""
    n = 60 + (seq * 97) % (1514 - 60 + 1)
    if len(f) != n or f[:6] != b"\xff" * 6 or f[6:12] != bytes.fromhex(MAC.replace(":", "")):
        return False
    if struct.unpack(">HH", f[12:16]) != (NF_TO_HOST, seq):
        return False
    return all(f[i] == (seq * 31 + i * 7 + 1) & 0xFF for i in range(16, n))


def read_exact(s, n):
    out = b""
    while len(out) < n:
        b = s.recv(n - len(out))
        if not b:
            break
        out += b
    return out


def read_line(s):
    out = b""
    while not out.endswith(b"\n") and len(out) < 64:
        b = s.recv(1)
        if not b:
            break
        out += b
    return out


class Host:
    """The host programs: uds_path_5000 for the guest, then CONNECT 6000."""

    def __init__(self, uds, tap):
        self.uds, self.tap = uds, tap
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(uds + "_5000")
        self.listener.listen(1)
        self.listener.settimeout(60)
        self.frame_ok = self.g2h_ok = self.h2g_ok = False
        self.error = None
        self.thread = threading.Thread(target=self.main)
        self.thread.start()

    def main(self):
        try:
            self.guest_to_host()
            self.host_to_guest()
        except Exception as e:  # reported by the checks
            self.error = repr(e)

    def guest_to_host(self):
        s, _ = self.listener.accept()
        s.settimeout(60)
        # the TAP exists now (made before the guest ran): listen on it
        self.pkt = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        self.pkt.bind((self.tap, 0))
        self.pkt.settimeout(60)
        hello = read_line(s)
        s.sendall(b"bye\n")
        self.g2h_ok = hello == b"hello from the guest\n" and s.recv(1) == b""
        s.close()

    def host_to_guest(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect(self.uds)
        s.sendall(b"CONNECT 6000\n")
        ok = read_line(s)
        s.sendall(b"ping\n")
        pong = read_line(s)
        s.close()
        self.h2g_ok = ok.startswith(b"OK ") and pong == b"pong\n"
        while True:
            f, addr = self.pkt.recvfrom(4096)
            if addr[2] != socket.PACKET_OUTGOING and f[12:14] == b"\x88\xb5":
                self.frame_ok = nf_frame_ok(f, 7)
                return

    def finish(self, what):
        self.thread.join(90)
        check(self.error is None, "%s: the host side ran (%s)" % (what, self.error))
        check(self.g2h_ok, "%s: guest to host over vsock (uds_path_5000)" % what)
        check(self.h2g_ok, "%s: host to guest over vsock (CONNECT 6000, OK, ping, pong)" % what)
        check(self.frame_ok, "%s: the guest's frame on the TAP, every byte" % what)
        self.listener.close()
        os.unlink(self.uds + "_5000")


def run_cli(tmp, tap):
    uds = os.path.join(tmp, "v.sock")
    host = Host(uds, tap)
    r = subprocess.run([SPARKLER, "run", "--kernel", GUEST, "--serial", "none",
                        "--timeout", "90", "--net", "tap=%s,mac=%s" % (tap, MAC),
                        "--vsock", "cid=42,uds=" + uds],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    print(r.stderr, end="")
    if r.returncode == 2 and "TUNSETIFF" in r.stderr:
        print("SKIP: TAPs cannot be made here: " + r.stderr.strip())
        host.listener.close()
        sys.exit(77)
    check(r.returncode == 0, "sparkler run --net --vsock: the guest powered off (status %d)"
          % r.returncode)
    host.finish("run")
    check(not os.path.exists("/sys/class/net/" + tap), "the TAP sparkler made is gone")
    check(not os.path.exists(uds), "uds_path is removed")


def run_config(tmp, tap):
    uds = os.path.join(tmp, "c.sock")
    cfg = os.path.join(tmp, "vm.json")
    json.dump({"boot-source": {"kernel_image_path": GUEST},
               "network-interfaces": [{"iface_id": "eth0", "host_dev_name": tap,
                                       "guest_mac": MAC}],
               "vsock": {"guest_cid": 42, "uds_path": uds}}, open(cfg, "w"))
    host = Host(uds, tap)
    r = subprocess.run([SPARKLER, "--config-file", cfg, "--no-api"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=120)
    print(r.stderr, end="")
    check(r.returncode == 0, "config file with network-interfaces and vsock: status %d"
          % r.returncode)
    host.finish("config file")


def bad_options():
    cases = [
        (["--net", "tap="], "--net tap="),
        (["--net", "tap=a,mac=01:00:5e:00:00:01"], "unicast MAC"),
        (["--net", "tap=a", "--net", "tap=a"], "given twice"),
        (sum((["--net", "tap=t%d" % i] for i in range(5)), []), "at most 4"),
        (["--vsock", "cid=2,uds=/tmp/x"], "--vsock cid=2"),
        (["--vsock", "uds=/tmp/x"], "needs cid=N and uds=PATH"),
        (["--vsock", "cid=3,uds=" + "x" * 200], "at most 107 bytes"),
    ]
    for args, needle in cases:
        r = subprocess.run([SPARKLER, "run", "--kernel", GUEST] + args, capture_output=True,
                           text=True, timeout=30)
        lines = r.stderr.strip().splitlines()
        check(r.returncode == 2 and len(lines) == 1 and needle in r.stderr,
              "run %s -> status 2, one line naming '%s' (%r)" % (" ".join(args), needle,
                                                               r.stderr.strip()))


def main():
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("SKIP: /dev/kvm is not usable")
        return 77
    bad_options()
    tap = "spkr%d" % (os.getpid() % 1000000)
    with tempfile.TemporaryDirectory() as tmp:
        run_cli(tmp, tap)
        run_config(tmp, tap)
    print("%d failures" % len(failures))
    return 1 if failures else 0


sys.exit(main())
