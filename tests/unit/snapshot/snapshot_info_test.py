#!/usr/bin/env python3
"""sparkler snapshot-info: the checked-in v1 fixture is printed (header,
sections, --fields), a truncated copy and a CRC flip are refused with one
line naming the section and exit status 1, and a bad command line is a
usage error (2). usage: snapshot_info_test.py SPARKLER FIXTURE_DIR"""
import os
import subprocess
import sys
import tempfile

sparkler, fixtures = sys.argv[1], sys.argv[2]
snap = os.path.join(fixtures, "fixture-v1.snap")
failed = []


def run(*args):
    p = subprocess.run([sparkler, "snapshot-info", *args], capture_output=True, text=True,
                       timeout=30)
    return p.returncode, p.stdout, p.stderr


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failed.append(what)


rc, out, err = run(snap)
check(rc == 0 and err == "", "the fixture prints (rc %d, stderr %r)" % (rc, err))
for want in ("format version:   1", "cpu:              GenuineIntel family 6 model 85",
             "host kernel:      6.1.0-fixture", "sections:         8",
             "com1 (uart8250)", "acpi_pm (acpi_pm)", "  7 end"):
    check(want in out, "the listing has %r" % want)
check("scr" not in out, "no fields without --fields")
rc, out, err = run(snap, "--fields")
check(rc == 0 and '"fixture-v1.mem"' in out and "scr" in out and "r0.gpa" in out,
      "--fields prints every field")

data = open(snap, "rb").read()
with tempfile.TemporaryDirectory() as d:
    cut = os.path.join(d, "cut.snap")
    open(cut, "wb").write(data[:700])
    rc, out, err = run(cut)
    check(rc == 1 and out == "" and len(err.splitlines()) == 1, "a truncated file: rc 1, one line")
    check("section 3" in err and "field 'length'" in err and "truncated" in err,
          "the line names the section and field: %r" % err.strip())
    flip = os.path.join(d, "flip.snap")
    b = bytearray(data)
    b[300] ^= 0x10
    open(flip, "wb").write(bytes(b))
    rc, out, err = run(flip)
    check(rc == 1 and "section 1 (memory" in err and "field 'crc'" in err,
          "a flipped bit: the CRC of its section (%r)" % err.strip())
    rc, out, err = run(os.path.join(d, "missing"))
    check(rc == 1 and "No such file" in err, "a missing file: rc 1 (%r)" % err.strip())
rc, out, err = run()
check(rc == 2 and "usage" in err, "no file: usage, rc 2")
rc, out, err = run(snap, "--bogus")
check(rc == 2, "an unknown option: rc 2")
rc, out, err = run("--help")
check(rc == 0 and "usage" in out, "--help")
sys.exit(1 if failed else 0)
