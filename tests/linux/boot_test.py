#!/usr/bin/env python3
"""Boot Debian's cloud kernel with `sparkler run` and check what happened.

usage: boot_test.py SPARKLER CACHE_DIR bzimage|vmlinux CPUS

On a real KVM host (VT-x/AMD-V) the guest must reach init: the marker with
the right CPU count, exit status 0, the boot-timer line, and the DSDT's
control-method power button (PNP0C0C, GPE 0) found by ACPICA and the button
driver the initramfs loads. On a PVM host
(guest kernel code emulated, PLATFORM notes) Linux stops early on an
instruction KVM cannot emulate: there the test checks what the kernel's own
log shows it parsed (our command line, our e820 map, our ACPI tables, the
CPU count, the serial console) and that the run ends with the documented
INTERNAL_ERROR report and exit status 4, within a bounded time."""
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MEM = "512M"


def kvm_kind():
    if not os.path.exists("/dev/kvm"):
        return "none"
    if os.path.isdir("/sys/module/kvm_pvm"):
        return "pvm"
    flags = open("/proc/cpuinfo").read()
    if re.search(r"\bvmx\b", flags):
        return "vmx"
    if re.search(r"\bsvm\b", flags):
        return "svm"
    return "unknown"


def fail(msg, log=""):
    print("FAIL: " + msg)
    if log:
        print("---- guest serial output (last 60 lines) ----")
        print("\n".join(log.splitlines()[-60:]))
    sys.exit(1)


def check(cond, msg, log):
    if not cond:
        fail(msg, log)
    print("ok: " + msg)


def main():
    sparkler, cache, kind, cpus = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    host = kvm_kind()
    if host == "none" or not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("SKIP: /dev/kvm is not usable here")
        sys.exit(77)
    print("KVM kind: %s (%s)" % (host, "guest kernel code emulated: Linux cannot reach init"
                                 if host == "pvm" else "hardware virtualization"))
    r = subprocess.run([sys.executable, os.path.join(HERE, "linux_assets.py"), cache],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        fail("could not prepare the kernel and initramfs: " + r.stderr)
    assets = dict(line.split("=", 1) for line in r.stdout.split())
    kernel = assets["BZIMAGE" if kind == "bzimage" else "VMLINUX"]

    cmdline = "console=ttyS0 reboot=k panic=-1"
    if host == "pvm":
        cmdline += " noxsave"  # PVM cannot emulate xsave/xrstor at CPL0
    # on PVM Linux needs ~45 s to get where it stops; a real host ~1 s
    timeout = 300
    cmd = [sparkler, "run", "--kernel", kernel, "--initrd", assets["INITRD"],
           "--cmdline", cmdline, "--cpus", str(cpus), "--mem", MEM, "--timeout", str(timeout)]
    print("running: " + " ".join(cmd))
    t0 = time.monotonic()
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout + 60)
    took = time.monotonic() - t0
    log = p.stdout.decode(errors="replace").replace("\r", "")
    err = p.stderr.decode(errors="replace").replace("\r", "")
    print("sparkler exited with %d after %.1f s" % (p.returncode, took))
    print("---- sparkler stderr ----\n" + err.strip())

    if host == "pvm":
        check_pvm(log, err, p.returncode, cmdline, cpus, kind)
    else:
        check_real(log, err, p.returncode, cmdline, cpus)
    print("PASS (%s, %d vCPU%s, KVM kind %s, %.1f s)" % (kind, cpus, "s" if cpus > 1 else "",
                                                       host, took))


def check_common(log, cmdline, cpus):
    check("Linux version" in log, "the kernel printed its banner on our serial console", log)
    check("Command line: " + cmdline in log, "the kernel saw our command line", log)
    check("BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable" in log and
          "BIOS-e820: [mem 0x0000000000100000-0x000000001fffffff] usable" in log,
          "the kernel took our e820 map (low RAM, RAM from 1 MiB to 512 MiB)", log)
    check("BIOS-e820: [mem 0x00000000e0000000-0x00000000e00fffff] reserved" in log and
          "BIOS-e820: [mem 0x00000000fe000000-0x00000000ffffffff] reserved" in log,
          "the kernel took our reserved device ranges (the PCI ECAM; the boot timer, IOAPIC "
          "and LAPIC page up to 4 GiB)", log)
    check(re.search(r"ACPI: RSDP 0x00000000000E0000 0000(24|14) \(v02 SPRKLR\)", log) is not None,
          "the kernel found our RSDP at 0xe0000", log)
    for sig in ("XSDT", "FACP", "DSDT", "APIC", "MCFG"):
        check(re.search(r"ACPI: %s 0x[0-9A-F]+ [0-9A-F]+ \(v\d\d SPRKLR" % sig, log) is not None,
              "the kernel parsed our ACPI %s" % sig, log)
    # the FACS has no OEM fields, and must be listed once
    check(len(re.findall(r"ACPI: FACS 0x00000000000E[0-9A-F]+ 000040\n", log)) == 1,
          "the kernel found our FACS once", log)
    check(("smpboot: Allowing %d CPUs, 0 hotplug CPUs" % cpus) in log,
          "the kernel allows %d CPU%s (our MADT)" % (cpus, "s" if cpus > 1 else ""), log)
    check(re.search(r"console \[ttyS0\] enabled", log) is not None,
          "the 8250 serial console came up", log)


def check_pvm(log, err, rc, cmdline, cpus, kind):
    check_common(log, cmdline, cpus)
    check(rc == 4, "exit status 4 (crash / internal error), got %d" % rc, log)
    check("INTERNAL_ERROR" in err and "insn=" in err,
          "the report names INTERNAL_ERROR and the instruction bytes", log)
    print("note: on this PVM host the kernel stops where KVM cannot emulate an instruction;"
          " init is reached only on a real KVM host")


def check_real(log, err, rc, cmdline, cpus):
    check_common(log, cmdline, cpus)
    check(("SPARKLER-INIT-OK cpus=%d" % cpus) in log, "init ran with %d CPUs" % cpus, log)
    # the GPE0 block with _E00 (ACPICA enables the GPEs that have a method)
    check("Enabled 1 GPEs in block 00 to 0F" in log,
          "ACPICA enabled GPE 0 of our 16-GPE GPE0 block (\\_GPE._E00)", log)
    # the button driver binds \_SB.PWRB; no fixed button (FADT PWR_BUTTON set)
    check("SPARKLER-INSMOD-FAILED" not in log, "the initramfs loaded the button module", log)
    check(re.search(r"Power Button as /devices/LNXSYSTM:00/LNXSYBUS:00/PNP0C0C:00/", log)
          is not None and "Power Button [PWRB]" in log and "Power Button [PWRF]" not in log,
          "the kernel found the DSDT's PNP0C0C power button PWRB, and no fixed one", log)
    check(rc == 0, "exit status 0 after the guest powered off, got %d" % rc, log)
    m = re.search(r"boot timer: the guest reached init ([0-9.]+) ms", err)
    check(m is not None, "the boot timer reported the time to init", log)
    print("time to init: %s ms" % m.group(1))


if __name__ == "__main__":
    main()
