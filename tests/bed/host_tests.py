"""The existing tests' real-host assertions, run under the bed's real KVM.

The guest-SDK tests (tests/guest), the gdb tests (tests/gdb) and run-cli's
CPUID checks (tests/linux/cli_test.py) each ask which KVM they run on and
check less on PVM: INTx counts (PVM re-sends a level interrupt), the CPUID
template (PVM shows the host's value of some bits), int3 breakpoints and
data watchpoints (PVM emulates guest kernel code and cannot run int3 or
check data breakpoints), steps at CPL3, FAIL_ENTRY (PVM enters the state).
Scenario host-tests runs those cases, unchanged, under a real KVM: on a
host with VT-x/AMD-V directly, all of them; else in the bed's L1 (kind
svm), in one L1 boot, those the bed's emulated AMD-V can show (not int3
or debug-register breakpoints: see TESTS); the host checks that each ran
on a real KVM and passed.

The tests run in the L1 as they run here, at the same paths: the test
binaries, the guest ELFs, the test scripts, Debian's python3.11 (with its
standard library, without the parts no test imports) and gdb go into the
L1's initramfs at the paths they have on this host, with the libraries ldd
names. gdb runs in the L1 beside the stub rather than here through a port
forwarded out of the L1: the tests then need no change (Ctrl-C to gdb,
SIGKILL of the monitor, Unix-socket stubs, the monitor's stderr all stay
local), the L1 needs no network, and no port on this host is taken. The
cost is the initramfs (about 100 MiB, most of it gdb's libraries), which
the L1 unpacks in a few seconds.

bed.py imports this module and adds SCENARIOS from scenarios()."""
import glob
import os
import re
import shutil

SRC = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
PYTHON = "/usr/bin/python3.11"  # Debian's, the one gdb embeds (libpython3.11)
PYLIB = "/usr/lib/python3.11"
PYLIB_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip", "pydoc_data",
              "distutils", "config-3.11-x86_64-linux-gnu", "site-packages", "dist-packages",
              "venv", "unittest", "sqlite3", "email", "http", "xmlrpc", "asyncio", "tomllib"}
GDB_DATA = "/usr/share/gdb"
# gdb converts its strings with iconv: glibc's module list and UTF-32/16
GCONV = ["/usr/lib/x86_64-linux-gnu/gconv/" + f for f in
         ("gconv-modules", "gconv-modules.cache", "UTF-32.so", "UTF-16.so")]

# (name, argv, bed) with @B (build dir), @S (source dir), @G (guest dir), @P
# (python), @K (sparkler) replaced; each must print the real KVM kind and pass.
# bed False: needs what the bed's emulated AMD-V does not give KVM, so it runs
# only on a host with VT-x/AMD-V (measured in the bed, QEMU 7.2 TCG, Linux 6.1):
# - int3 never reaches KVM's #BP intercept: QEMU checks a software int3 against
#   the INTn intercept only, so with KVM_GUESTDBG_USE_SW_BP the guest gets the
#   #BP itself (gdb `break`: the guest triple-faults, status 3);
#   (QEMU's raise_interrupt2: an INTn-type event consults SVM_EXIT_SWINT, only
#   exceptions consult SVM_EXIT_EXCP_BASE + vector);
# - DR0-3/DR7 breakpoints set through KVM_SET_GUEST_DEBUG never fire in the L2
#   (guest-single_step: the hardware breakpoint on breakpoint_here() gives no
#   DEBUG exit): QEMU's VMRUN (helper_vmrun) stores the VMCB's DR7 in its CPU
#   state without arming its TCG breakpoints (no cpu_x86_update_dr7), so none
#   is set while the L2 runs; so hbreak, watchpoints and the rearm cases
#   cannot run there. Both are the same in QEMU's current source, so a newer
#   QEMU (bookworm-backports) would not help: these need VT-x/AMD-V hardware.
# Single-step (TF) works in the bed: guest-single_step's steps through stepped()
# came out DEBUG, one instruction each, and gdb-interrupt_user steps at CPL3.
TESTS = [
    # guest-SDK cases that branch on the KVM kind
    ("guest-cpl3_entry", ["@B/tests/guest/guest_tests", "cpl3_entry"], True),  # IOPL 3, CS
    ("guest-cpuid", ["@B/tests/guest/guest_tests", "cpuid"], True),  # no TSC-deadline w/o LAPIC
    ("guest-internal_error", ["@B/tests/guest/guest_tests", "internal_error"], True),
    ("guest-fail_entry", ["@B/tests/guest/guest_tests", "fail_entry"], True),  # FAIL_ENTRY
    ("guest-single_step", ["@B/tests/guest/guest_tests", "single_step"], False),  # DR7
    ("guest-virtio-intx", ["@B/tests/guest/virtio_tests", "intx"], True),  # one call a request
    # run-cli's CPUID checks: HTT, CX16 and every bit --cpu-template minimal hides
    ("run-cli-cpuid", ["@P", "@S/tests/linux/cli_test.py", "@K", "@G", "cpuid"], True),
    # gdb: a step at CPL3 (refused on PVM)
    ("gdb-interrupt_user", ["@P", "@S/tests/gdb/gdb_test.py", "@K", "@G", "interrupt_user"],
     True),
    # gdb: int3 (Z0), watchpoints (rwatch/awatch), steps over a breakpoint (RF)
    ("gdb-break", ["@P", "@S/tests/gdb/gdb_test.py", "@K", "@G", "break"], False),
    ("gdb-step", ["@P", "@S/tests/gdb/gdb_test.py", "@K", "@G", "step"], False),
    ("gdb-hbreak_loop", ["@P", "@S/tests/gdb/gdb_test.py", "@K", "@G", "hbreak_loop"], False),
    ("gdb-watch", ["@P", "@S/tests/gdb/gdb_test.py", "@K", "@G", "watch"], False),
    ("gdb-protocol-points", ["@P", "@S/tests/gdb/protocol_test.py", "@K", "@G", "points"],
     False),
    ("gdb-protocol-rearm", ["@P", "@S/tests/gdb/protocol_test.py", "@K", "@G", "rearm"], False),
    ("gdb-protocol-rearm_sw", ["@P", "@S/tests/gdb/protocol_test.py", "@K", "@G", "rearm_sw"],
     False),
    ("gdb-protocol-rearm_smp", ["@P", "@S/tests/gdb/protocol_test.py", "@K", "@G",
                                "rearm_smp"], False),
]
TEST_TIMEOUT = 150  # s each (busybox timeout): TCG, a loaded machine; a hang costs one test
# what each kind of test prints when it passes, and the kind it names
PASSED = [(r"^PASS \S+ \(KVM kind '(\w+)'\)", "guest-"), (r"^KVM kind: (\w+)$", "run-cli"),
          (r"^kvm: (\w+)$", "gdb-")]


def guest_dir(build):
    return os.path.join(build, "guest")


def argv(args, build):
    sub = {"@B": build, "@S": SRC, "@G": guest_dir(build), "@P": PYTHON, "@K": '"$SPARKLER"'}
    out = []
    for a in args:
        for k, v in sub.items():
            a = a.replace(k, v)
        out.append(a if a.startswith('"') else "'%s'" % a)
    return " ".join(out)


def selected():
    """TESTS, or the names in $BED_HOST_TESTS (comma-separated) when set."""
    only = os.environ.get("BED_HOST_TESTS")
    return [t for t in TESTS if not only or t[0] in only.split(",")]


def script(build):
    lines = ["export PATH=/usr/bin:/bin:/usr/sbin:/sbin",
             # the L1 has no /etc: gdb's `target remote :PORT` resolves localhost
             "[ -e /etc/hosts ] || { mkdir -p /etc; echo '127.0.0.1 localhost' >/etc/hosts; }",
             't() { n=$1; shift; s=$(date +%s); timeout ' + str(TEST_TIMEOUT) +
             ' "$@" >"$OUT/t-$n.out" 2>&1; echo $? >"$OUT/t-$n.rc"; '
             'echo "$n $(($(date +%s) - s))" >>"$OUT/t-times"; '
             # in the L1, say on its console which test runs (a report names it)
             '[ -e /bed/run.sh ] && echo "BED-HOST-TEST $n done" >/dev/console; true; }']
    for name, args, bed in selected():
        run = "t %s %s" % (name, argv(args, build))
        # in the L1 (/bed/run.sh is there) only what its emulated AMD-V can show
        lines.append(run if bed else '[ -e /bed/run.sh ] && echo %s >>"$OUT/t-not-in-bed" || %s'
                     % (name, run))
    return "\n".join(lines) + "\ntrue\n"


def tree(bed, build):
    """[(path in the L1, host file)]: the tests' files at their own paths."""
    out, seen = [], set()

    def add(path, src=None):
        if path not in seen:
            seen.add(path)
            out.append((path, src or path))

    def binary(path):
        add(path)
        for dst, lib in bed.with_libs(path):
            add(dst, lib)

    for b in ("guest_tests", "virtio_tests"):
        binary(os.path.join(build, "tests", "guest", b))
    for e in sorted(glob.glob(os.path.join(guest_dir(build), "*.elf"))):
        add(e)
    for f in ("tests/gdb/gdb_test.py", "tests/gdb/gdbtest.py", "tests/gdb/protocol_test.py",
              "tests/linux/cli_test.py"):
        add(os.path.join(SRC, f))
    binary(PYTHON)
    binary(shutil.which("gdb") or "/usr/bin/gdb")
    for f in GCONV:
        if os.path.exists(f):
            add(f)
    for top, skip in ((PYLIB, PYLIB_SKIP), (GDB_DATA, set())):
        for d, dirs, files in os.walk(top):
            dirs[:] = sorted(x for x in dirs if x not in skip)
            for f in sorted(files):
                p = os.path.join(d, f)
                if "__pycache__" in d and not f.endswith(".cpython-311.pyc"):
                    continue  # the optimised variants: no test runs with -O
                if os.path.isfile(p):
                    add(p)
                    if f.endswith(".so"):
                        for dst, lib in bed.with_libs(p):
                            add(dst, lib)
    return out


def check(bed, out):
    times = bed.read(out, "t-times")
    print("---- seconds each (in the L1 when the bed ran) ----\n" + times.strip())
    failed, skipped = [], bed.read(out, "t-not-in-bed").split()
    for name, args, _ in selected():
        if name in skipped:
            print("---- %s: not run in the bed (needs int3 or DR7 breakpoints to reach KVM; "
                  "see host_tests.py) ----" % name)
            continue
        text = bed.read(out, "t-%s.out" % name)
        rc = bed.read(out, "t-%s.rc" % name).strip()
        pat = [p for p, prefix in PASSED if name.startswith(prefix)][0]
        m = re.search(pat, text, re.M)
        kind = m.group(1) if m else None
        passed = rc == "0" and re.search(r"^PASS", text, re.M) is not None
        print("---- %s: status %s, KVM kind %s: %s ----\n%s" %
              (name, rc, kind, "passed" if passed else "FAILED", text.strip()))
        if kind not in ("svm", "vmx", "hardware") or not passed:
            failed.append(name)
    # each test's own output is above; one line for all
    bed.ok(not failed, "every test ran on a real KVM and passed there (failed: %s)" %
           (", ".join(failed) or "none"))
    # what the real-host branches assert, seen in the output as well
    if "guest-fail_entry" not in [t[0] for t in selected()]:
        return
    fe = bed.read(out, "t-guest-fail_entry.out")
    bed.ok(re.search(r"exit: FAIL_ENTRY reason 0x((ffffffff)?ffffffff|80000021)", fe) is not None,
           "an entry the processor refuses is KVM_EXIT_FAIL_ENTRY (SVM: VMEXIT_INVALID, "
           "VMX: 0x80000021)", fe)


def scenarios(bed):
    def files(a, tmp):
        p = os.path.join(tmp, "host-tests.sh")
        open(p, "w").write(script(os.path.abspath(bed.BUILD)))
        return {"host-tests.sh": p}

    return {"host-tests": {"script": 'sh "$A/host-tests.sh"\n', "files": files,
                           "check": lambda out, tmp: check(bed, out),
                           "tree": lambda: tree(bed, os.path.abspath(bed.BUILD))}}
