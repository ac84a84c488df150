#!/usr/bin/env python3
"""`make demo`: `sparkler sandbox --stats demo.elf` (guest/demo.c) run the
way the Makefile runs it. Checks exit status 0, the guest's greeting and
output (the second vCPU's sum, the goodbye), and the --stats table: a row
per exit kind with count and mean microseconds per exit, with rows for
MMIO, PIO, HYPERCALL, CPU_UP (the second vCPU), CPU_DOWN and exactly one
SYSTEM_DOWN (the guest powered off), and an `all` row that adds up.
Then a guest whose main() returns (ucall DONE) also ends on SYSTEM_DOWN
with status 0: the sandbox lets the SDK power off after DONE. Last,
`--strict` makes an MMIO access to no device end the run with a report
naming it, status 4.

Skips (77) without a usable /dev/kvm.

usage: demo_test.py SPARKLER GUEST_DIR"""
import os
import re
import subprocess
import sys

SPARKLER, GUEST_DIR = sys.argv[1], sys.argv[2]
failures = []


def check(cond, what, detail=""):
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        if detail:
            print(detail)
        failures.append(what)


def kvm_kind():
    if os.path.exists("/sys/module/kvm_pvm"):
        return "pvm"
    return "vmx/svm or other"


def stats_table(stderr):
    """{kind: (count, mean_us)} from the --stats table."""
    rows = {}
    for line in stderr.splitlines():
        m = re.match(r"^\| ([A-Z_]+) \| (\d+) \| ([0-9.]+) \|", line)
        if m:
            rows[m.group(1)] = (int(m.group(2)), float(m.group(3)))
    m = re.search(r"^\| all \| (\d+) \|", stderr, re.M)
    return rows, int(m.group(1)) if m else None


def run(elf, *opts):
    return subprocess.run([SPARKLER, "sandbox", "--stats", "--timeout", "100", *opts, elf],
                          capture_output=True, text=True, timeout=120)


def main():
    try:
        with open("/dev/kvm", "rb"):
            pass
    except OSError as e:
        print("SKIP: /dev/kvm is not usable here: %s" % e)
        return 77
    print("KVM kind: %s" % kvm_kind())

    r = run(os.path.join(GUEST_DIR, "demo.elf"))
    print(r.stdout + r.stderr)
    check(r.returncode == 0, "the demo exits with status 0 (got %d)" % r.returncode)
    check(r.stdout.startswith("Hello from a sparkler guest on vCPU 0!\n"), "the greeting comes first")
    check("vCPU 1 summed 1..100 = 5050\n" in r.stdout, "the second vCPU did its work")
    check("Goodbye.\n" in r.stdout, "the guest says goodbye")
    check("mean us per exit" in r.stderr, "the table has a column for mean us per exit")
    rows, total = stats_table(r.stderr)
    for kind in ("MMIO", "PIO", "HYPERCALL", "CPU_UP", "CPU_DOWN", "SYSTEM_DOWN"):
        count, mean = rows.get(kind, (0, 0.0))
        check(count >= 1 and mean > 0, "a %s row with a count and a mean (%d, %.2f us)"
              % (kind, count, mean))
    check(rows.get("SYSTEM_DOWN", (0,))[0] == 1, "one SYSTEM_DOWN: the guest powered off")
    check(rows.get("CPU_UP", (0,))[0] == 1, "one CPU_UP: vCPU 1 was started once")
    # the demo prints 41 characters on port 0xe9, one exit each
    check(rows.get("PIO", (0,))[0] >= 41, "a PIO exit per debug-port byte")
    # 3 + 50 + 1 reads of the sandbox device
    check(rows.get("MMIO", (0,))[0] >= 54, "an MMIO exit per device read")
    check(total == sum(c for c, _ in rows.values()), "the all row adds up (%s)" % total)

    # a guest whose main() returns 0: DONE, then the SDK's power-off
    r = run(os.path.join(GUEST_DIR, "t_done.elf"))
    rows, _ = stats_table(r.stderr)
    check(r.returncode == 0 and r.stdout == "main returns 0\n" and
          rows.get("SYSTEM_DOWN", (0,))[0] == 1,
          "after main() returns the guest powers off, status 0 (got %d)" % r.returncode,
          r.stderr)
    # --strict: the MMIO read of no device ends the run with a report, status 4
    r = run(os.path.join(GUEST_DIR, "t_strict_miss.elf"), "--strict")
    check(r.returncode == 4 and "INTERNAL_ERROR on vCPU 0" in r.stderr and
          "MMIO read of 4 bytes at 0xd0000100 hits no device" in r.stderr,
          "--strict: a miss is fatal, reported, status 4 (got %d)" % r.returncode, r.stderr)
    if failures:
        print("%d check(s) failed on KVM kind %s" % (len(failures), kvm_kind()))
        return 1
    print("PASS demo (KVM kind %s)" % kvm_kind())
    return 0


if __name__ == "__main__":
    sys.exit(main())
