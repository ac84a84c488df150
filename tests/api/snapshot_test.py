#!/usr/bin/env python3
"""Snapshots through Firecracker's API and `sparkler run --restore` (issue 15),
driven by curl like api_test.py (whose client and process helpers it uses).

A guest-SDK program stands in for the kernel: t_ticker prints "tick N" on
COM1 forever, N counting in its memory. A VM paused after some ticks is
saved with PUT /snapshot/create and loaded into other sparkler processes
(PUT /snapshot/load, run --restore): each must go on from the next tick,
never from 0. Waits are for conditions (a line of output), never for a
duration; meson's timeout bounds a hang.

usage: snapshot_test.py SPARKLER GUEST_DIR UFFD_HANDLER"""
import os
import signal
import subprocess
import sys
import tempfile

UFFD_HANDLER = sys.argv[3]
sys.argv = [sys.argv[0], sys.argv[1], sys.argv[2], "vm"]
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import api_test as A  # noqa: E402
from api_test import check, expect  # noqa: E402


_procs = []


def started(tmp, **kw):
    """api_test.started, remembered so that a failing check's exception
    does not leave a sparkler behind (main() kills what is left)."""
    p = A.started(tmp, **kw)
    _procs.append(p)
    return p


def wait_ticks(path, n, proc):
    """Until the serial file has more than n tick lines, or the process ended."""
    while len(A.ticks(path)) <= n:
        if proc.p.poll() is not None:
            return False
        A.time.sleep(0.02)
    return True


def numbers(path):
    """The tick numbers of complete lines (a pause may fall inside a line:
    the guest writes each byte with an `out`)."""
    text = open(path).read()
    return [int(t.split()[1]) for t in text.split("\n")[:-1] if t.startswith("tick ")]


def next_full_tick(path):
    """The first tick a restored VM prints whole: the one after the last
    complete line, or the one after that when the snapshot cut a line (the
    restored VM finishes that line first, without its "tick ")."""
    last = numbers(path)[-1]
    return last + 1 if open(path).read().endswith("\n") else last + 2


def boot_ticker(tmp, name, serial, extra=()):
    p = started(tmp, name=name)
    for method, path, body in [
        ("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64}),
        ("PUT", "/boot-source", {"kernel_image_path": A.TICKER}),
        ("PUT", "/serial", {"serial_out_path": serial}),
        ("PUT", "/entropy", {}),
        ("PUT", "/balloon", {"amount_mib": 0, "deflate_on_oom": False}),
    ] + list(extra):
        expect(p.call(method, path, body), 204, None, "%s %s" % (method, path))
    return p


def create_rules(tmp):
    """Firecracker's rules for PUT /snapshot/create; then a Full snapshot."""
    serial = os.path.join(tmp, "a.out")
    st, mem = os.path.join(tmp, "a.state"), os.path.join(tmp, "a.mem")
    p = boot_ticker(tmp, "a.sock", serial)
    body = {"snapshot_path": st, "mem_file_path": mem}
    expect(p.call("PUT", "/snapshot/create", body), 400, None, "create before boot",
           "not supported before starting the microVM")
    expect(p.call("PUT", "/actions", {"action_type": "InstanceStart"}), 204, None, "start")
    check(wait_ticks(serial, 2, p), "the ticker ticks")
    expect(p.call("PUT", "/snapshot/create", body), 400, None, "create while running",
           "must be paused")
    expect(p.call("PUT", "/snapshot/create", {"snapshot_path": st}), 400, None,
           "create without mem_file_path", "missing field `mem_file_path`")
    expect(p.call("PUT", "/snapshot/create", dict(body, snapshot_type="Half")), 400, None,
           "create with an unknown snapshot_type", "unknown variant `Half`")
    expect(p.call("PUT", "/snapshot/create", dict(body, extra=1)), 400, None,
           "create with an unknown field", "unknown field `extra`")
    expect(p.call("PATCH", "/vm", {"state": "Paused"}), 204, None, "pause")
    expect(p.call("PUT", "/snapshot/create", dict(body, snapshot_type="Diff")), 400, None,
           "Diff without track_dirty_pages", "dirty log")
    expect(p.call("PUT", "/snapshot/create", dict(body, snapshot_type="Full")), 204, None,
           "Full snapshot of the paused VM")
    at = next_full_tick(serial) - 1
    r = subprocess.run([A.SPARKLER, "snapshot-info", st], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    check(r.returncode == 0 and "vcpu" in r.stdout and "machine" in r.stdout and
          "com1" in r.stdout and "balloon" in r.stdout and "rng" in r.stdout,
          "snapshot-info reads it: vcpu, machine, com1, rng and balloon sections")
    # the saved VM goes on by itself
    expect(p.call("PATCH", "/vm", {"state": "Resumed"}), 204, None, "resume")
    check(wait_ticks(serial, at + 3, p), "the saved VM ticks on")
    n = numbers(serial)
    check(n == list(range(len(n))), "the saved VM lost no tick (0..%d)" % n[-1])
    p.finish()
    return st, mem, at


def load_rules(tmp, st, mem):
    """What PUT /snapshot/load refuses; the process stays usable."""
    p = started(tmp, name="r.sock")
    good = {"snapshot_path": st, "mem_backend": {"backend_type": "File", "backend_path": mem}}
    expect(p.call("PUT", "/snapshot/load", dict(good, mem_file_path=mem)), 400, None,
           "load with mem_file_path and mem_backend", "not both")
    expect(p.call("PUT", "/snapshot/load", {"snapshot_path": st}), 400, None,
           "load without memory", "missing field `mem_backend`")
    nobody = os.path.join(tmp, "nobody.sock")
    expect(p.call("PUT", "/snapshot/load",
                  dict(good, mem_backend={"backend_type": "Uffd", "backend_path": nobody})),
           400, None, "load with the Uffd backend and no handler at its socket",
           "cannot connect to the Uffd handler at " + nobody)
    bad = os.path.join(tmp, "bad.state")
    data = open(st, "rb").read()
    open(bad, "wb").write(data[: len(data) // 2])
    expect(p.call("PUT", "/snapshot/load", dict(good, snapshot_path=bad)), 400, None,
           "load of a truncated state file", "truncated")
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0x40
    open(bad, "wb").write(bytes(flipped))
    expect(p.call("PUT", "/snapshot/load", dict(good, snapshot_path=bad)), 400, None,
           "load of a state file with a flipped bit", "crc")
    expect(p.call("PUT", "/snapshot/load",
                  dict(good, network_overrides=[{"iface_id": "eth9", "host_dev_name": "x"}])),
           400, None, "a network override for an interface the snapshot lacks", "eth9")
    r = p.call("GET", "/")
    check(r.json and r.json["state"] == "Not started", "after refused loads: Not started")
    expect(p.call("PUT", "/boot-source", {"kernel_image_path": A.TICKER}), 204, None,
           "boot-source")
    expect(p.call("PUT", "/snapshot/load", good), 400, None, "load after boot-source",
           "Loading a microVM snapshot not allowed after configuring boot-specific resources")
    p.finish()


def load_runs(tmp, st, mem, at):
    """Loaded in another process: resume_vm true goes on from tick at + 1;
    without it the VM waits paused until PATCH /vm Resumed."""
    serial = os.path.join(tmp, "b.out")
    p = started(tmp, name="b.sock")
    expect(p.call("PUT", "/serial", {"serial_out_path": serial}), 204, None, "serial")
    expect(p.call("PUT", "/snapshot/load",
                  {"snapshot_path": st, "resume_vm": True,
                   "mem_backend": {"backend_type": "File", "backend_path": mem}}),
           204, None, "PUT /snapshot/load, resume_vm")
    r = p.call("GET", "/")
    check(r.json and r.json["state"] == "Running", "loaded: Running (%r)" % r.json)
    check(wait_ticks(serial, 4, p), "the loaded VM ticks")
    n = numbers(serial)
    check(n[:4] == [at + 1, at + 2, at + 3, at + 4],
          "it goes on from the snapshot: ticks %r after tick %d" % (n[:4], at))
    expect(p.call("PUT", "/snapshot/load",
                  {"snapshot_path": st, "mem_file_path": mem}), 400, None,
           "a second load", "not supported after starting the microVM")
    p.finish()

    serial = os.path.join(tmp, "c.out")
    p = started(tmp, name="c.sock")
    expect(p.call("PUT", "/serial", {"serial_out_path": serial}), 204, None, "serial")
    expect(p.call("PUT", "/snapshot/load", {"snapshot_path": st, "mem_file_path": mem}), 204,
           None, "PUT /snapshot/load without resume_vm (mem_file_path)")
    r = p.call("GET", "/")
    check(r.json and r.json["state"] == "Paused", "loaded without resume_vm: Paused (%r)" %
          r.json)
    check(A.ticks(serial) == [], "paused: no output yet")
    expect(p.call("PATCH", "/vm", {"state": "Resumed"}), 204, None, "resume the loaded VM")
    check(wait_ticks(serial, 1, p) and numbers(serial)[0] == at + 1,
          "after resume it goes on from tick %d" % (at + 1))
    p.finish()


def uffd_handler(mode, sock, mem):
    """tests/guest/uffd_handler MODE, once it listens (it prints "ready")."""
    h = subprocess.Popen([UFFD_HANDLER, mode, sock, mem], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    check(h.stdout.readline() == "ready\n", "the %s handler listens" % mode)
    return h


def load_uffd(tmp, st, mem, at):
    """mem_backend Uffd: Firecracker's handshake with an external handler
    (the regions as JSON, the userfaultfd as SCM_RIGHTS) that serves every
    page from the memory file: the VM goes on from tick at + 1. Handlers
    that hang up early: 400 naming it, nothing started, the process usable."""
    sock = os.path.join(tmp, "uffd.sock")
    for mode in ("close-early", "exit-early"):
        h = uffd_handler(mode, sock, mem)
        p = started(tmp, name="u.sock")
        r = p.call("PUT", "/snapshot/load",
                   {"snapshot_path": st, "resume_vm": True,
                    "mem_backend": {"backend_type": "Uffd", "backend_path": sock}})
        if r.status == 400 and "userfaultfd cannot be used here" in (r.text or ""):
            print("SKIP (Uffd part): %s" % r.text.strip())
            h.kill()
            h.wait()
            p.finish()
            return
        expect(r, 400, None, "Uffd load with a handler that does %s" % mode, "Uffd handler")
        r = p.call("GET", "/")
        check(r.json and r.json["state"] == "Not started",
              "after the %s handler: Not started (%r)" % (mode, r.json))
        h.wait()
        p.finish()
    serial = os.path.join(tmp, "u.out")
    h = uffd_handler("serve", sock, mem)
    p = started(tmp, name="u.sock")
    expect(p.call("PUT", "/serial", {"serial_out_path": serial}), 204, None, "serial")
    expect(p.call("PUT", "/snapshot/load",
                  {"snapshot_path": st, "resume_vm": True,
                   "mem_backend": {"backend_type": "Uffd", "backend_path": sock}}),
           204, None, "PUT /snapshot/load with the Uffd backend")
    check(wait_ticks(serial, 3, p), "the VM served by the Uffd handler ticks")
    n = numbers(serial)
    check(n[:3] == [at + 1, at + 2, at + 3],
          "Uffd: it goes on from the snapshot: ticks %r after tick %d" % (n[:3], at))
    p.finish()
    out, err = h.communicate(timeout=60)  # it ends when sparkler hangs up
    check(h.returncode == 0 and out.startswith("served "),
          "the handler served pages and ended: %r %r" % (out, err))
    print("Uffd handler: %s" % out.strip())


def diff(tmp):
    """track_dirty_pages: a Diff snapshot holds only what changed since the
    Full one: its memory file has few data blocks, the Full one's many."""
    serial = os.path.join(tmp, "d.out")
    p = boot_ticker(tmp, "d.sock", serial,
                    [("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64,
                                                 "track_dirty_pages": True})])
    expect(p.call("PUT", "/actions", {"action_type": "InstanceStart"}), 204, None, "start")
    check(wait_ticks(serial, 2, p), "ticks")
    full, dmem = os.path.join(tmp, "full.mem"), os.path.join(tmp, "diff.mem")
    expect(p.call("PATCH", "/vm", {"state": "Paused"}), 204, None, "pause")
    expect(p.call("PUT", "/snapshot/create", {"snapshot_path": os.path.join(tmp, "full.st"),
                                              "mem_file_path": full}), 204, None, "Full")
    expect(p.call("PATCH", "/vm", {"state": "Resumed"}), 204, None, "resume")
    at = len(A.ticks(serial))
    check(wait_ticks(serial, at + 2, p), "ticks after the Full snapshot")
    expect(p.call("PATCH", "/vm", {"state": "Paused"}), 204, None, "pause")
    expect(p.call("PUT", "/snapshot/create", {"snapshot_type": "Diff",
                                              "snapshot_path": os.path.join(tmp, "diff.st"),
                                              "mem_file_path": dmem}), 204, None, "Diff")
    fb, db = os.stat(full).st_blocks * 512, os.stat(dmem).st_blocks * 512
    print("memory files: Full %d bytes of data, Diff %d" % (fb, db))
    check(0 < db < fb // 4, "the Diff holds a fraction of the Full (%d vs %d bytes)" % (db, fb))
    p.finish()


def run_ticks(args, n, during=None):
    """sparkler run ARGS until it printed n ticks (or ended), then SIGTERM:
    the ticks, its stderr, and what during() said while it still ran."""
    p = subprocess.Popen([A.SPARKLER, "run"] + args, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    got = []
    for line in p.stdout:
        if line.startswith("tick "):
            got.append(int(line.split()[1]))
        if len(got) == n:
            break
    seen = during() if during else None
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    return got, err, seen


def run_restore(tmp, st, mem, at):
    """sparkler run --restore: the same guest goes on on stdout."""
    rc, err = A.run_status(["run", "--restore", st, "--kernel", A.TICKER])
    check(rc != 0 and "comes from the snapshot" in err, "--restore with --kernel refused")
    rc, err = A.run_status(["run", "--restore", os.path.join(tmp, "nope")])
    check(rc != 0 and "nope" in err, "--restore of a missing file refused: %r" % err.strip())
    got, err, _ = run_ticks(["--restore", st, "--restore-mem", mem], 3)
    check(got == [at + 1, at + 2, at + 3],
          "run --restore goes on from tick %d: %r (%s)" % (at + 1, got, err.strip()[-300:]))
    # the same through the library's userfaultfd thread
    got, err, _ = run_ticks(["--restore", st, "--restore-mem", mem, "--restore-uffd"], 3)
    if not got and "userfaultfd cannot be used here" in err:
        print("SKIP (--restore-uffd): %s" % err.strip())
    else:
        check(got == [at + 1, at + 2, at + 3],
              "run --restore --restore-uffd goes on from tick %d: %r (%s)" %
              (at + 1, got, err.strip()[-300:]))


def device_fields(st, device):
    """{field: value text} of one device section, from snapshot-info --fields."""
    r = subprocess.run([A.SPARKLER, "snapshot-info", st, "--fields"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    check(r.returncode == 0, "snapshot-info --fields %s: %s" % (st, r.stderr.strip()))
    out, inside = {}, False
    for line in r.stdout.split("\n"):
        if " offset " in line and " crc " in line:  # a section's line
            inside = line.rstrip().endswith(" %s" % device)
        elif inside and line.startswith("    "):
            f = line.split(None, 2)
            out[f[0]] = f[2] if len(f) > 2 else ""
    return out


def clone_of(tmp, st, mem, name, cid, at):
    """A clone loaded with its own vsock CID and socket: it goes on from the
    snapshot, listens on its own socket; paused and saved again, its vsock
    device has that CID, and its VM generation ID is its own."""
    serial = os.path.join(tmp, name + ".out")
    uds = os.path.join(tmp, name + ".vsock")
    p = started(tmp, name=name + ".sock")
    expect(p.call("PUT", "/serial", {"serial_out_path": serial}), 204, None, "serial")
    expect(p.call("PUT", "/snapshot/load",
                  {"snapshot_path": st, "mem_file_path": mem, "resume_vm": True,
                   "vsock_override": {"guest_cid": cid, "uds_path": uds}}),
           204, None, "load clone %s with CID %d" % (name, cid))
    check(wait_ticks(serial, 2, p) and numbers(serial)[0] == at + 1,
          "clone %s goes on from tick %d" % (name, at + 1))
    check(os.path.exists(uds), "clone %s listens on its own socket %s" % (name, uds))
    expect(p.call("PATCH", "/vm", {"state": "Paused"}), 204, None, "pause " + name)
    again = os.path.join(tmp, name + ".again")
    expect(p.call("PUT", "/snapshot/create",
                  {"snapshot_path": again, "mem_file_path": again + ".mem"}), 204, None,
           "snapshot of clone " + name)
    p.finish()
    vs = device_fields(again, "vsock (virtio_vsock)")
    check(vs.get("guest_cid", "").startswith("%d " % cid),
          "clone %s's vsock device has CID %d: %r" % (name, cid, vs.get("guest_cid")))
    return device_fields(again, "vmgenid (vmgenid)").get("id")


def clones(tmp):
    """Clones of a VM with vsock through PUT /snapshot/load's identity fields
    and run --restore --clone: each its own CID, socket and VMGENID; bad
    identities answered 400 with the reason, nothing started."""
    serial = os.path.join(tmp, "o.out")
    st, mem = os.path.join(tmp, "o.state"), os.path.join(tmp, "o.mem")
    uds = os.path.join(tmp, "o.vsock")
    p = boot_ticker(tmp, "o.sock", serial,
                    [("PUT", "/vsock", {"guest_cid": 3, "uds_path": uds})])
    expect(p.call("PUT", "/actions", {"action_type": "InstanceStart"}), 204, None, "start")
    check(wait_ticks(serial, 2, p), "the origin ticks")
    expect(p.call("PATCH", "/vm", {"state": "Paused"}), 204, None, "pause the origin")
    expect(p.call("PUT", "/snapshot/create", {"snapshot_path": st, "mem_file_path": mem}),
           204, None, "snapshot of the origin")
    at = next_full_tick(serial) - 1
    p.finish()
    origin_id = device_fields(st, "vmgenid (vmgenid)").get("id")
    check(origin_id and "16 bytes" in origin_id, "the snapshot has a VMGENID: %r" % origin_id)

    q = started(tmp, name="bad.sock")
    good = {"snapshot_path": st, "mem_file_path": mem}
    for body, why, want in [
        (dict(good, vsock_override={"guest_cid": 2, "uds_path": uds + ".x"}), "CID 2",
         "CIDs 0-2 are reserved"),
        (dict(good, vsock_override={"guest_cid": 1 << 32, "uds_path": uds + ".x"}),
         "CID 2^32", "need 3 to"),
        (dict(good, vsock_override={"guest_cid": 9}), "no socket", "missing field `uds_path`"),
        (dict(good, vsock_override={"guest_cid": "9", "uds_path": "x"}), "a string CID",
         "an integer"),
        (dict(good, network_overrides=[{"iface_id": "eth0", "host_dev_name": "t",
                                        "guest_mac": "01:00:00:00:00:01"}]),
         "a multicast MAC", "not a unicast MAC"),
        (dict(good, network_overrides=[{"iface_id": "eth0", "host_dev_name": "t",
                                        "guest_mac": "06:00:00:00:00"}]),
         "a short MAC", "not a unicast MAC"),
        (dict(good, network_overrides=[{"iface_id": "eth0", "host_dev_name": "t"},
                                       {"iface_id": "eth0", "host_dev_name": "u"}]),
         "one interface twice", "the same interface"),
    ]:
        expect(q.call("PUT", "/snapshot/load", body), 400, None, "load with " + why, want)
    r = q.call("GET", "/")
    check(r.json and r.json["state"] == "Not started", "after refused clones: Not started")
    q.finish()
    # a snapshot without vsock cannot take a CID
    q = started(tmp, name="bad2.sock")
    a_state = os.path.join(tmp, "a.state")
    expect(q.call("PUT", "/snapshot/load",
                  {"snapshot_path": a_state, "mem_file_path": os.path.join(tmp, "a.mem"),
                   "vsock_override": {"guest_cid": 9, "uds_path": uds + ".x"}}), 400, None,
           "a CID for a snapshot without vsock", "no vsock device")
    q.finish()

    id1 = clone_of(tmp, st, mem, "k1", 10, at)
    id2 = clone_of(tmp, st, mem, "k2", 11, at)
    check(len({origin_id, id1, id2}) == 3,
          "origin and clones have three VMGENIDs: %r %r %r" % (origin_id, id1, id2))

    # the CLI: clone 2 of the snapshot listens on <socket>.2
    rc, err = A.run_status(["run", "--restore", st, "--clone", "0"])
    check(rc != 0 and "need 1 to 1023" in err, "--clone 0 refused: %r" % err.strip())
    got, err, listening = run_ticks(["--restore", st, "--clone", "2"], 2,
                                    lambda: os.path.exists(uds + ".2"))
    check(got == [at + 1, at + 2] and listening,
          "run --restore --clone 2 goes on from tick %d (%r) on %s.2 (%s)" %
          (at + 1, got, uds, err.strip()[-300:]))


def main():
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("SKIP: /dev/kvm is not usable")
        return 77
    kind = subprocess.run([A.SPARKLER, "kvm-info"], stdout=subprocess.PIPE,
                          text=True).stdout.strip()
    print("host: %s" % kind)
    if "usable" not in kind:
        print("SKIP: KVM is not usable")
        return 77
    with tempfile.TemporaryDirectory(prefix="spk-snap-api-") as tmp:
        try:
            st, mem, at = create_rules(tmp)
            load_rules(tmp, st, mem)
            load_runs(tmp, st, mem, at)
            load_uffd(tmp, st, mem, at)
            run_restore(tmp, st, mem, at)
            clones(tmp)
            diff(tmp)
        finally:
            for p in _procs:
                if p.p.poll() is None:
                    p.p.kill()
                    p.p.wait()
    print("%d failure(s)" % len(A.failures))
    return 1 if A.failures else 0


if __name__ == "__main__":
    sys.exit(main())
