#!/usr/bin/env python3
"""seccomp on real `sparkler` processes, read from the host in
/proc/PID/task/TID/status (Seccomp: 2 is filter mode, Seccomp_filters how
many programs are stacked):

- `run` with two vCPUs, a disk and `--gdb --gdb-no-wait`: every thread is
  filtered: both vCPU threads, the virtio event loop ("virtio"), the gdb
  stub ("gdb-stub"), the main thread, the signal thread ("signals") and
  the --timeout watchdog ("watchdog"), each with its own list;
- `run --serial stdout` (and with `--console-virtio`, where it fills the
  guest's receive queue): the stdin thread ("stdin") is filtered;
- `--api-sock` after InstanceStart: every thread of the API process is
  filtered, and each vCPU thread, the virtio loop, the VM thread ("vmm")
  and the request-deadline thread ("api-watch") have their own list on
  top (two filters);
- `run --no-seccomp`: the loud WARNING line, and no thread is filtered.

vCPU threads carry no name: they are the threads blocked in
ioctl(KVM_RUN) (/proc/PID/task/TID/syscall: 16, then the vCPU fd, then
0xae80), not counting KVM's own worker thread (kvm-nx-lpage-recovery,
PF_USER_WORKER), which the kernel also shows among the process's threads.
A guest that halts (t_halt) keeps every vCPU there. The virtio loop and
the gdb stub are looked at once they wait for their first event (epoll,
poll), which is after they filter themselves.

usage: seccomp_test.py SPARKLER GUEST_DIR WORK_DIR SANITIZE"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

SPARKLER, GUEST_DIR, WORK, SANITIZE = sys.argv[1:5]
HALT = os.path.join(GUEST_DIR, "t_halt.elf")
KVM_RUN = 0xAE80
SYS_IOCTL = 16
# where the event loop and the gdb stub wait, after they filter themselves
EPOLL_WAITS = (232, 281)  # epoll_wait, epoll_pwait
POLLS = (7, 271)  # poll, ppoll
PF_USER_WORKER = 0x4000
failures = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        failures.append(what)


class Thread:
    def __init__(self, pid, tid):
        base = "/proc/%d/task/%d/" % (pid, tid)
        self.tid = tid
        self.comm = open(base + "comm").read().strip()
        st = dict(l.split(":", 1) for l in open(base + "status").read().splitlines())
        self.seccomp = int(st["Seccomp"])
        self.filters = int(st.get("Seccomp_filters", "0"))
        self.flags = int(open(base + "stat").read().rsplit(")", 1)[1].split()[6])
        self.syscall = open(base + "syscall").read().split()

    def worker(self):
        return bool(self.flags & PF_USER_WORKER)

    def vcpu(self):
        s = self.syscall
        return (not self.worker() and len(s) > 2 and s[0] == str(SYS_IOCTL)
                and int(s[2], 16) == KVM_RUN)

    def waiting(self, *nrs):
        """Blocked in one of these system calls: past its start-up (and its filter)."""
        return bool(self.syscall) and self.syscall[0] in {str(n) for n in nrs}

    def __repr__(self):
        return "%d %s (Seccomp %d, filters %d, syscall %s)" % (
            self.tid, self.comm, self.seccomp, self.filters, " ".join(self.syscall[:3]))


def threads(pid):
    out = []
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            out.append(Thread(pid, int(t)))
        except (OSError, ValueError, KeyError, IndexError):
            pass  # gone meanwhile
    return out


def wait_for(pid, ready, what, seconds=30):
    """Poll /proc until ready(threads) holds (the process must stay alive)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            ts = threads(pid)
        except OSError:
            break
        if ready(ts):
            return ts
        time.sleep(0.05)
    check(False, "%s (threads: %s)" % (what, threads(pid) if os.path.isdir("/proc/%d" % pid)
                                      else "process gone"))
    return None


def stop(p, what):
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    check(p.returncode == 5, "%s stops on SIGTERM with status 5 (got %d: %s)" %
          (what, p.returncode, err.strip()[-300:]))
    return err


def disk(path):
    with open(path, "wb") as f:
        f.truncate(1 << 20)
    return path


def run_mode(tmp):
    img = disk(os.path.join(tmp, "disk.img"))
    p = subprocess.Popen([SPARKLER, "run", "--kernel", HALT, "--serial", "none", "--cpus", "2",
                          "--disk", img, "--gdb", "tcp:127.0.0.1:0", "--gdb-no-wait",
                          "--timeout", "120"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ts = wait_for(p.pid, lambda ts: sum(t.vcpu() for t in ts) == 2 and
                  any(t.comm == "virtio" and t.waiting(*EPOLL_WAITS) for t in ts) and
                  any(t.comm == "gdb-stub" and t.waiting(*POLLS) for t in ts),
                  "run: two vCPU threads in KVM_RUN, the virtio loop and the gdb stub waiting")
    if ts is None:
        p.kill()
        print(p.communicate()[1])
        return
    for t in ts:
        print("  thread %r" % t)
    vcpus = [t for t in ts if t.vcpu()]
    for t in vcpus:
        check(t.seccomp == 2 and t.filters >= 1, "run: vCPU thread %d is filtered (%r)" % (t.tid, t))
    for name in ("virtio", "gdb-stub"):
        for t in [t for t in ts if t.comm == name]:
            check(t.seccomp == 2 and t.filters >= 1, "run: the %s thread is filtered (%r)" %
                  (name, t))
    mine = [t for t in ts if not t.worker()]
    check(all(t.seccomp == 2 and t.filters >= 1 for t in mine),
          "run: every thread is filtered: %s" % [t for t in mine if t.seccomp != 2])
    main_t = [t for t in ts if t.tid == p.pid]
    check(main_t and main_t[0].seccomp == 2,
          "run: the main thread has its own list (%s)" % main_t)
    for name in ("signals", "watchdog"):
        named = [t for t in ts if t.comm == name]
        check(len(named) == 1 and named[0].seccomp == 2,
              "run: the %s thread is filtered (%s)" % (name, named))
    # the watchdog starts after the main thread filtered itself: two lists
    check(all(t.filters >= 2 for t in ts if t.comm == "watchdog"),
          "run: the watchdog stacks its list on the main thread's")
    stop(p, "run")


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(10)
        self.sock.connect(self.path)


def request(sock, method, path, body=None):
    c = UnixHTTP(sock)
    try:
        c.request(method, path, body=json.dumps(body) if body is not None else None,
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def stdin_mode(tmp):
    """With the console on stdout, the thread that reads stdin (and, with
    --console-virtio, fills the guest's receive queue) is filtered."""
    for extra in ([], ["--console-virtio"]):
        p = subprocess.Popen([SPARKLER, "run", "--kernel", HALT, "--serial", "stdout",
                              "--timeout", "120"] + extra, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        what = "run %s" % " ".join(["--serial stdout"] + extra)
        ts = wait_for(p.pid, lambda ts: sum(t.vcpu() for t in ts) == 1 and
                      any(t.comm == "stdin" for t in ts), what + ": the stdin thread")
        if ts is None:
            p.kill()
            print(p.communicate()[1])
            return
        t = [t for t in ts if t.comm == "stdin"][0]
        check(t.seccomp == 2 and t.filters >= 1, "%s: the stdin thread is filtered (%r)" %
              (what, t))
        p.stdin.write("hello\n")
        p.stdin.flush()
        time.sleep(0.2)
        check(p.poll() is None, "%s: input reaches the guest, the monitor lives on" % what)
        stop(p, what)


def api_mode(tmp):
    sock = os.path.join(tmp, "api.sock")
    p = subprocess.Popen([SPARKLER, "--api-sock", sock], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not os.path.exists(sock) and p.poll() is None:  # no deadline: meson's bounds it
        time.sleep(0.02)
    check(os.path.exists(sock), "api: the socket appears")
    before = threads(p.pid) if p.poll() is None else []
    check(before and all(t.seccomp == 2 for t in before),
          "api: before any VM, every thread of the API process is filtered: %s" % before)
    for method, path, body in [
            ("PUT", "/boot-source", {"kernel_image_path": HALT}),
            ("PUT", "/machine-config", {"vcpu_count": 2, "mem_size_mib": 64}),
            ("PUT", "/drives/rootfs", {"drive_id": "rootfs", "is_root_device": True,
                                       "is_read_only": False,
                                       "path_on_host": disk(os.path.join(tmp, "api.img"))}),
            ("PUT", "/actions", {"action_type": "InstanceStart"})]:
        code, text = request(sock, method, path, body)
        check(code == 204, "api: %s %s -> 204 (%d %s)" % (method, path, code, text.strip()))
    ts = wait_for(p.pid, lambda ts: sum(t.vcpu() for t in ts) == 2 and
                  any(t.comm == "virtio" and t.waiting(*EPOLL_WAITS) for t in ts),
                  "api: after InstanceStart two vCPU threads are in KVM_RUN, the virtio loop "
                  "waits")
    if ts is None:
        p.kill()
        print(p.communicate()[1])
        return
    for t in ts:
        print("  thread %r" % t)
    mine = [t for t in ts if not t.worker()]
    check(all(t.seccomp == 2 and t.filters >= 1 for t in mine),
          "api: every thread of the API process is filtered: %s" %
          [t for t in mine if t.seccomp != 2])
    vcpus = [t for t in ts if t.vcpu()]
    check(all(t.filters >= 2 for t in vcpus),
          "api: each vCPU thread adds its own list on top of the API's (filters >= 2): %s" %
          vcpus)
    loops = [t for t in ts if t.comm == "virtio"]
    check(loops and all(t.filters >= 2 for t in loops),
          "api: the virtio loop adds the device list: %s" % loops)
    for name in ("vmm", "api-watch"):
        named = [t for t in ts if t.comm == name and not t.vcpu()]  # vCPUs inherit "vmm"
        check(len(named) == 1 and named[0].filters >= 2,
              "api: the %s thread adds its own list on top of the API's: %s" % (name, named))
    stop(p, "the API process")


def no_seccomp(tmp):
    p = subprocess.Popen([SPARKLER, "run", "--no-seccomp", "--kernel", HALT, "--serial", "none",
                          "--disk", disk(os.path.join(tmp, "ns.img")), "--timeout", "120"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    ts = wait_for(p.pid, lambda ts: any(t.vcpu() for t in ts) and
                  any(t.comm == "virtio" and t.waiting(*EPOLL_WAITS) for t in ts),
                  "--no-seccomp: the vCPU and the virtio loop run")
    if ts is None:
        p.kill()
        print(p.communicate()[1])
        return
    check(all(t.seccomp == 0 and t.filters == 0 for t in ts),
          "--no-seccomp: no thread is filtered: %s" % [t for t in ts if t.seccomp])
    err = stop(p, "run --no-seccomp")
    warn = [l for l in err.splitlines() if "WARNING" in l and "--no-seccomp" in l]
    check(len(warn) == 1 and "filters are OFF" in warn[0],
          "--no-seccomp says so loudly, once: %s" % warn)


def main():
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("SKIP: /dev/kvm is not usable here")
        return 77
    r = subprocess.run([SPARKLER, "kvm-info"], capture_output=True, text=True, timeout=30)
    m = re.match(r"kvm: (\S+)", r.stdout)
    if r.returncode != 0 or not m:
        print("SKIP: no usable KVM here: " + (r.stdout + r.stderr).strip())
        return 77
    print("KVM kind: %s" % m.group(1))
    if SANITIZE not in ("", "none"):
        print("SKIP: a sanitizer build (b_sanitize=%s) runs without filters" % SANITIZE)
        return 77
    tmp = os.path.join(WORK, "seccomp-test")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    run_mode(tmp)
    stdin_mode(tmp)
    api_mode(tmp)
    no_seccomp(tmp)
    shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("%d checks failed" % len(failures))
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
