#!/usr/bin/env python3
"""The jail: `sparkler --jail DIR --uid U --gid G --new-netns run ...` boots a
guest-SDK program (a stand-in kernel that halts and keeps the VM alive) with
a virtio-blk disk inside the jail, and the test checks from the host that
the jailed monitor cannot see the host's files, PIDs or network, has the
host's /dev/kvm (and /dev/null, /dev/net/tun) as its own 0600 nodes, runs
as U:G without capabilities, under the rlimits jail.c sets, with no other
descriptors and no environment; then stops it with SIGTERM. Also: SIGINT,
SIGHUP and SIGPWR (the power button) reach the jailed monitor through the
outer parent, and a SIGKILL of the outer parent kills the jailed monitor.

The outer parent (still root in the host's namespaces) filters itself
too, except in sanitizer builds, which run without filters.

usage: jail_test.py SPARKLER GUEST_DIR WORK_DIR [SANITIZE]"""
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time

SPARKLER, GUEST_DIR, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
SANITIZED = len(sys.argv) > 4 and sys.argv[4] not in ("", "none")
UID = GID = 65534
failures = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        failures.append(what)


def status(pid):
    return dict(line.split(":", 1) for line in open("/proc/%d/status" % pid).read().splitlines())


def children(pid):
    try:
        return [int(p) for p in open("/proc/%d/task/%d/children" % (pid, pid)).read().split()]
    except OSError:
        return []


def disk_open(pid):
    try:
        return any(os.readlink("/proc/%d/fd/%s" % (pid, fd)) == "/disk.img"
                   for fd in os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return False


def refusals(jail):
    for args, needle in [
        (["--jail", "/nonexistent", "--uid", "1", "--gid", "1"], "not a directory"),
        (["--jail", jail, "--uid", "0", "--gid", "1"], "--uid 0"),
        (["--jail", jail, "--uid", "5"], "needs --jail DIR, --uid U and --gid G"),
    ]:
        r = subprocess.run([SPARKLER] + args + ["version"], capture_output=True, text=True)
        check(r.returncode == 2 and needle in r.stderr,
              "%s -> status 2 naming '%s' (%d %r)" % (" ".join(args), needle, r.returncode,
                                                    r.stderr.strip()))


def curl(sock, method, path, body=None):
    # --max-time only guards against a hang: an answer is expected at once
    args = ["curl", "-s", "--max-time", "60", "--unix-socket", sock, "-X", method,
            "-w", "\n%{http_code}", "http://localhost" + path]
    if body is not None:
        args += ["-H", "Content-Type: application/json", "-d", body]
    r = subprocess.run(args, capture_output=True, text=True)
    text, _, code = r.stdout.rpartition("\n")
    return int(code or 0), text


def api_in_jail(jail, env):
    """`--api-sock` inside the jail: libmicrohttpd is loaded on demand, so it
    must be loaded before pivot_root takes its file away; a VM configured
    and started through the socket runs."""
    if not shutil.which("curl"):
        print("SKIP (API in the jail): no curl")
        return
    run = os.path.join(jail, "run")
    os.makedirs(run, exist_ok=True)
    os.chown(run, UID, GID)
    sock = os.path.join(run, "api.sock")
    p = subprocess.Popen([SPARKLER, "--jail", jail, "--uid", str(UID), "--gid", str(GID),
                          "--api-sock", "/run/api.sock"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    # as a Firecracker user's script does: wait for the file (it appears
    # only once the server accepts), then talk at once; no deadline of
    # ours, the process ends or the file comes (meson's timeout bounds it)
    while not os.path.exists(sock) and p.poll() is None:
        time.sleep(0.02)
    made = os.path.exists(sock)
    check(made, "the jailed API process makes its socket")
    if not made:
        print(p.communicate()[1].decode(errors="replace"))
        return
    code, body = curl(sock, "GET", "/")
    check(code == 200 and '"Not started"' in body, "the jailed API answers GET / (%d %s)" %
          (code, body))
    code, body = curl(sock, "PUT", "/boot-source", '{"kernel_image_path": "/kernel.elf"}')
    check(code == 204, "PUT /boot-source with a path inside the jail: 204 (%d %s)" % (code, body))
    code, body = curl(sock, "PUT", "/actions", '{"action_type": "InstanceStart"}')
    check(code == 204, "InstanceStart in the jail: 204 (%d %s)" % (code, body))
    code, body = curl(sock, "GET", "/")
    check(code == 200 and '"Running"' in body, "the jailed VM runs (%d %s)" % (code, body))
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=20)
    if failures:
        print("the jailed API process said:\n" + err.decode(errors="replace"))
    check(p.returncode == 5, "SIGTERM stops the jailed API process: status 5 (got %d: %s)" %
          (p.returncode, err.decode().strip()))
    check(not os.path.exists(sock), "the socket file is gone")


def jailed_run(jail, env, args, kernel="/kernel.elf"):
    """`sparkler --jail ... run` of kernel (a path in the jail) with the
    jail's disk: the outer process and the jailed monitor's host PID once it
    runs (a vCPU thread besides the main one, the disk open), else None."""
    p = subprocess.Popen([SPARKLER, "--jail", jail, "--uid", str(UID), "--gid", str(GID),
                          "--new-netns", "run", "--kernel", kernel, "--disk", "/disk.img",
                          "--timeout", "60"] + args, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    inner = None
    for _ in range(200):
        kids = children(p.pid)
        if kids and int(status(kids[0]).get("Threads", "1")) >= 2 and disk_open(kids[0]):
            inner = kids[0]
            break
        time.sleep(0.05)
    check(inner is not None, "the jailed monitor runs (a vCPU thread besides the main one) and "
          "has the disk inside the jail open")
    if inner is None:
        p.kill()
        print(p.communicate()[1].decode())
    return p, inner


def gone(pid):
    """pid has exited (no process, or a zombie nobody reaped yet)."""
    try:
        return status(pid)["State"].split()[0] == "Z"
    except (OSError, KeyError):
        return True


def parent_killed(jail, env):
    """SIGKILL of the outer parent (no forwarding possible) takes the jailed
    monitor with it: the parent-death signal jail.c sets in the child."""
    p, inner = jailed_run(jail, env, ["--serial", "none"])
    if inner is None:
        return
    check(status(inner)["NSpid"].split()[-1] == "1", "the jailed monitor is PID 1 of its "
          "namespace (%s)" % status(inner)["NSpid"].strip())
    p.kill()
    p.communicate(timeout=20)
    for _ in range(200):  # 20 s at most: the death is immediate, the bound only ends a failure
        if gone(inner):
            break
        time.sleep(0.1)
    dead = gone(inner)
    if not dead:
        os.kill(inner, signal.SIGKILL)
    check(dead, "SIGKILL of the outer parent kills the jailed monitor (pid %d)" % inner)


def forwarded(jail, env):
    """The outer parent forwards SIGINT, SIGHUP (stop: status 5, like SIGTERM
    above) and SIGPWR: the ACPI power button reaches the jailed monitor and
    the power-button guest powers off (status 0)."""
    for sig in (signal.SIGINT, signal.SIGHUP):
        p, inner = jailed_run(jail, env, ["--serial", "none"])
        if inner is None:
            return
        p.send_signal(sig)
        out, err = p.communicate(timeout=20)
        check(p.returncode == 5 and b"stopping the guest" in err,
              "%s reaches the jailed monitor: status 5 (got %d: %s)" %
              (sig.name, p.returncode, err.decode().strip()))
    shutil.copy(os.path.join(GUEST_DIR, "t_power_button.elf"), os.path.join(jail, "button.elf"))
    p, inner = jailed_run(jail, env, [], kernel="/button.elf")
    if inner is None:
        return
    line = p.stdout.readline()  # the guest's COM1 on the monitor's stdout
    check(b"pb: waiting" in line, "the power-button guest waits for GPE 0 (%r)" % line)
    p.send_signal(signal.SIGPWR)
    try:
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    check(p.returncode == 0 and b"pb: pressed" in out and
          b"SIGPWR: pressed the power button" in err and b"stopping" not in err,
          "SIGPWR to the outer parent presses the jailed guest's power button: it powers off, "
          "status 0 (status %d, out %r, err %r)" % (p.returncode, out, err.strip()))
    os.unlink(os.path.join(jail, "button.elf"))


def main():
    if os.geteuid() != 0:
        print("SKIP: the jail needs root")
        return 77
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("SKIP: /dev/kvm is not usable here")
        return 77
    print("KVM kind: %s" % ("pvm" if os.path.isdir("/sys/module/kvm_pvm") else "hardware"))
    jail = os.path.join(WORK, "jail-root")
    shutil.rmtree(jail, ignore_errors=True)
    os.makedirs(jail)
    shutil.copy(os.path.join(GUEST_DIR, "t_halt.elf"), os.path.join(jail, "kernel.elf"))
    with open(os.path.join(jail, "disk.img"), "wb") as f:  # a virtio-blk disk inside the jail
        f.truncate(1 << 20)
    os.chown(os.path.join(jail, "disk.img"), UID, GID)
    refusals(jail)

    env = dict(os.environ, SPARKLER_SECRET="host-only")
    # in a sanitizer build LeakSanitizer cannot stop the world of a process
    # that dropped to another uid (it is no longer dumpable): leaks are
    # checked everywhere else
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    p, inner = jailed_run(jail, env, ["--serial", "none"])
    if inner is None:
        return 1
    outer = status(p.pid)
    if SANITIZED:
        print("skip: the outer parent's filter (a sanitizer build runs without filters)")
    else:
        check(outer["Seccomp"].strip() == "2", "the outer parent (root, host namespaces) is "
              "filtered: Seccomp %s" % outer["Seccomp"].strip())
    st = status(inner)
    check(st["Uid"].split()[:3] == [str(UID)] * 3 and st["Gid"].split()[:3] == [str(GID)] * 3,
          "it runs as %d:%d (%s / %s)" % (UID, GID, st["Uid"].strip(), st["Gid"].strip()))
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        check(int(st[cap], 16) == 0, "%s is empty (%s)" % (cap, st[cap].strip()))
    check(st["NoNewPrivs"].strip() == "1", "no_new_privs is set")
    check(st["NSpid"].split()[-1] == "1", "it is PID 1 of its own PID namespace: it sees no host "
          "PIDs (NSpid %s)" % st["NSpid"].strip())
    for ns in ("pid", "mnt", "net", "ipc", "uts"):
        check(os.readlink("/proc/%d/ns/%s" % (inner, ns)) != os.readlink("/proc/self/ns/" + ns),
              "its %s namespace is not the host's" % ns)
    files = sorted(os.listdir("/proc/%d/root" % inner))
    check(files == ["dev", "disk.img", "kernel.elf"], "its / holds only the jail's files: %s" %
          files)
    devs = sorted(os.listdir("/proc/%d/root/dev" % inner))
    want = {"kvm", "null"} | ({"net"} if os.path.exists("/dev/net/tun") else set())
    check(set(devs) == want, "its /dev holds exactly %s: %s" % (sorted(want), devs))
    for dev in ["kvm", "null"] + (["net/tun"] if "net" in want else []):
        st_in = os.stat("/proc/%d/root/dev/%s" % (inner, dev))
        st_host = os.stat("/dev/" + dev)
        check(stat.S_ISCHR(st_in.st_mode) and st_in.st_rdev == st_host.st_rdev and
              (st_in.st_uid, st_in.st_gid) == (UID, GID) and stat.S_IMODE(st_in.st_mode) == 0o600,
              "/dev/%s in the jail is the host's device %d:%d, %d:%d 0600 (%d:%d %d:%d %o)" %
              (dev, os.major(st_host.st_rdev), os.minor(st_host.st_rdev), UID, GID,
               os.major(st_in.st_rdev), os.minor(st_in.st_rdev), st_in.st_uid, st_in.st_gid,
               stat.S_IMODE(st_in.st_mode)))
    # the limits src/vmm/confine/jail.c set_limits() gives: soft = hard
    limits = {}
    for line in open("/proc/%d/limits" % inner).read().splitlines()[1:]:
        m = re.match(r"(Max [a-z ]+?)\s{2,}(\S+)\s+(\S+)", line)
        if m:
            limits[m.group(1)] = (m.group(2), m.group(3))
    for name, value in [("Max open files", "2048"), ("Max core file size", "0"),
                        ("Max locked memory", str(64 << 10))]:
        check(limits.get(name) == (value, value), "rlimit %s is %s (soft and hard): %s" %
              (name, value, limits.get(name)))
    check(not os.path.exists("/proc/%d/root/etc" % inner), "the host's /etc is not there")
    netdev = open("/proc/%d/net/dev" % inner).read()
    ifaces = sorted(l.split(":")[0].strip() for l in netdev.splitlines()[2:])
    check(ifaces == ["lo"], "its network has only a loopback device: %s" % ifaces)
    environ = open("/proc/%d/environ" % inner, "rb").read()
    check(b"SPARKLER_SECRET" not in environ and environ.strip(b"\0") == b"",
          "its environment is empty (%d bytes)" % len(environ.strip(b"\0")))
    fds = {}
    for fd in os.listdir("/proc/%d/fd" % inner):
        fds[int(fd)] = os.readlink("/proc/%d/fd/%s" % (inner, fd))
    check("/disk.img" in fds.values(), "the disk is open under its path in the jail: %s" % fds)
    # the VM's own: KVM's, the disk, the virtio loop's event descriptors and io_uring
    own = ("/disk.img", "anon_inode:[eventfd]", "anon_inode:[eventpoll]",
           "anon_inode:[timerfd]", "anon_inode:[io_uring]")
    extra = {fd: t for fd, t in fds.items() if fd > 2 and "kvm" not in t and t not in own}
    check(not extra, "no descriptors beyond stdio, KVM's and the VM's own: %s" % extra)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=20)
    check(p.returncode == 5, "SIGTERM reaches the jailed monitor: status 5 (got %d: %s)" %
          (p.returncode, err.decode().strip()))
    api_in_jail(jail, env)
    parent_killed(jail, env)
    forwarded(jail, env)
    shutil.rmtree(jail, ignore_errors=True)
    if failures:
        print("%d checks failed" % len(failures))
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
