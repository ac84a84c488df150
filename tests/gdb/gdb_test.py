#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The gdb stub with Debian's gdb in batch mode, against guest-SDK programs
built with -O0 -g (guest/tests/gdb_*.c), under `sparkler sandbox --gdb`.

usage: gdb_test.py SPARKLER GUEST_DIR CASE

Every guest function stepped here runs at CPL0. On PVM hosts (KVM's
page-table backend, where guest kernel code is emulated) that is all a
debugger can reach: #DB from CPL3 code goes to the guest, so user-mode code
cannot be single-stepped or stopped by a breakpoint; int3 cannot run in
kernel mode, so software breakpoints (Z0) are debug registers there; and
the emulator checks no data breakpoints, so a write watchpoint single-steps
kernel code and compares. The cases print what they skip on which host.
"""
import os
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gdbtest import Client, Fail, Sandbox, check, gdb, main  # noqa: E402


def elf(guest_dir, name):
    return os.path.join(guest_dir, 't_%s.elf' % name)


def finished(sb, status=0, output=None):
    rc = sb.wait()
    check(rc == status, 'the sandbox exited with %d, not %d' % (rc, status), sb.stderr())
    if output:
        check(output in sb.out, 'the guest did not print %r' % output, sb.out + sb.stderr())


def session(sparkler, guest_dir, name, commands, extra=(), **kw):
    """Start the guest under --gdb, run gdb with commands; (sandbox, gdb output)."""
    e = elf(guest_dir, name)
    sb = Sandbox(sparkler, e, extra=extra)
    try:
        out = gdb(e, sb.gdb_target(), commands,
                  connected=lambda: 'debugger connected' in sb.stderr(), **kw)
    except Fail:
        sb.kill()
        raise
    print(out)
    return sb, out


def has(out, *patterns):
    for p in patterns:
        check(re.search(p, out, re.M), 'gdb output lacks %r' % p, out)


# ---- breakpoints, locals, globals, steps ----------------------------------------------

def case_break(sparkler, guest_dir, kind):
    """Break on a function, hit it, print a local and a global, next, continue."""
    sb, out = session(sparkler, guest_dir, 'gdb_basic', [
        'break add_one', 'continue',
        'print x', 'next', 'print local', 'print counter', 'next', 'print counter',
        'bt', 'continue'])
    has(out, r'Breakpoint 1, add_one \(x=41\) at .*gdb_basic.c:\d+',
        r'^\$1 = 41$', r'^\$2 = 42$', r'^\$3 = 0$', r'^\$4 = 42$',
        r'#1 .* in main \(\) at .*gdb_basic.c', r'exited normally')
    finished(sb, 0, 'knob=7 counter=42 r=126 watched=30')


def case_step(sparkler, guest_dir, kind):
    """step into a function, finish out of it, next over a call."""
    sb, out = session(sparkler, guest_dir, 'gdb_basic', [
        'break main', 'continue', 'next', 'step', 'print y', 'finish', 'next', 'next',
        'print r', 'continue'])
    has(out, r'Breakpoint 1, main \(\) at', r'hw_target \(y=42\) at .*gdb_basic.c',
        r'^\$1 = 42$', r'Value returned is \$2 = 84',
        r'^\$3 = 126$', r'exited normally')
    finished(sb, 0)


def case_setvar(sparkler, guest_dir, kind):
    """Set a variable from gdb; the guest prints what it sees."""
    sb, out = session(sparkler, guest_dir, 'gdb_basic', [
        'break add_one', 'continue', 'set var knob = 42', 'print knob', 'continue'])
    has(out, r'^\$1 = 42$', r'exited normally')
    finished(sb, 0, 'knob=42')


def case_hbreak(sparkler, guest_dir, kind):
    """A hardware breakpoint (Z1): debug registers on every host."""
    sb, out = session(sparkler, guest_dir, 'gdb_basic', [
        'hbreak hw_target', 'continue', 'print y', 'info breakpoints', 'continue'])
    has(out, r'Hardware assisted breakpoint 1 at', r'Breakpoint 1, hw_target \(y=42\)',
        r'^\$1 = 42$', r'hw breakpoint\s+keep y', r'exited normally')
    finished(sb, 0)
    if kind == 'pvm':
        print('note: on PVM `break` (Z0) is a debug register too: int3 cannot run in guest '
              'kernel mode here; the int3 path of Z0 runs only on VMX/SVM hosts')


def case_hbreak_loop(sparkler, guest_dir, kind):
    """hbreak in a function called in a loop, kept inserted while stopped (`breakpoint
    always-inserted`): each continue stops at the next call, one call later, never twice
    at the same one (the stub steps the vCPU over its breakpoint when resuming)."""
    sb, out = session(sparkler, guest_dir, 'gdb_loop', [
        'set breakpoint always-inserted on', 'hbreak tick', 'continue', 'print calls',
        'continue', 'print calls', 'continue', 'print calls', 'delete', 'continue'])
    hits = re.findall(r'^Breakpoint 1, tick \(cpu=0\)', out, re.M)
    values = [int(v) for v in re.findall(r'^\$\d+ = (\d+)$', out, re.M)]
    check(len(hits) == 3 and values == [0, 1, 2],
          'three stops at tick with calls 0, 1, 2, not %d stops with %r' % (len(hits), values),
          out)
    has(out, r'exited normally')
    finished(sb, 0, 'calls=5')


def case_watch(sparkler, guest_dir, kind):
    """A write watchpoint on a global; then an access watchpoint."""
    sb, out = session(sparkler, guest_dir, 'gdb_basic', [
        'break main', 'continue', 'watch watched', 'continue', 'continue', 'continue',
        'delete', 'awatch counter', 'continue'])
    has(out, r'Hardware watchpoint 2: watched',
        r'Old value = 0\s+New value = 10', r'Old value = 10\s+New value = 20',
        r'Old value = 20\s+New value = 30')
    if kind == 'pvm':
        # KVM's emulator of guest kernel code checks no data breakpoints
        has(out, r'Could not insert hardware watchpoint|Cannot insert hardware watchpoint|'
                 r'Could not insert hardware breakpoints')
        print('note: on PVM a write watchpoint single-steps kernel code and compares; '
              'read and access watchpoints (rwatch, awatch) are refused, as checked here')
    else:
        has(out, r'Hardware access \(read/write\) watchpoint \d+: counter', r'Value = 42')
    finished(sb, 0)  # gdb detached at its end: the guest finishes


# ---- registers and threads -------------------------------------------------------------

def case_registers(sparkler, guest_dir, kind):
    """info registers: general, segment, flags and control registers; set one."""
    sb, out = session(sparkler, guest_dir, 'gdb_basic', [
        'break add_one', 'continue', 'info registers', 'print $st0', 'print $xmm0',
        'set $rbx = 0x1234abcd', 'print/x $rbx', 'print $rip == add_one + 11 || 1',
        'info registers cr3 efer', 'x/2i $pc', 'continue'])
    has(out, r'^rip\s+0x[0-9a-f]+\s+0x[0-9a-f]+ <add_one\+\d+>', r'^rsp\s+0x',
        r'^cs\s+0x8\s', r'^ss\s+0x10\s', r'^eflags\s+0x', r'^fs_base\s+0x',
        r'^cr0\s+0x8', r'^cr3\s+0x10000\s', r'^cr4\s+0x', r'^efer\s+0x5',
        r'^\$1 = <unavailable>', r'^\$3 = 0x1234abcd', r'=> 0x[0-9a-f]+ <add_one\+\d+>:',
        r'exited normally')
    print('note: x87 and SSE registers are shown unavailable (no FPU state in the library)')
    finished(sb, 0)


def case_threads(sparkler, guest_dir, kind):
    """Two vCPUs: info threads, switching between them."""
    sb, out = session(sparkler, guest_dir, 'gdb_smp', [
        'break worker_mark', 'continue', 'info threads', 'print id', 'thread 1', 'bt',
        'print worker_done', 'thread 2', 'bt', 'continue'])
    has(out, r'Thread 2 hit Breakpoint 1, worker_mark \(id=7\)',
        r'^\s+1\s+Thread 1 \(vCPU 0, kernel mode\)', r'^\*\s+2\s+Thread 2 \(vCPU 1, kernel mode\)',
        r'^\$1 = 7$', r'Switching to thread 1', r'#\d .*main \(\) at .*gdb_smp.c',
        r'^\$2 = 0$', r'Switching to thread 2', r'#1 .* worker \(arg=7\)',
        r'exited normally')
    finished(sb, 0, 'worker_done=7')


# ---- Ctrl-C, detach, attach later, kill ----------------------------------------------------

def case_interrupt(sparkler, guest_dir, kind):
    """Ctrl-C (SIGINT to gdb) stops a spinning guest; a variable set then ends the spin."""
    sb, out = session(sparkler, guest_dir, 'gdb_spin', [
        'continue', 'print spins > 0', 'info threads', 'set var stop_spinning = 1', 'continue'],
        interrupts=[2])
    has(out, r'Program received signal SIGINT, Interrupt', r'in main \(\) at .*gdb_spin.c|'
        r'main \(\) at .*gdb_spin.c', r'^\$1 = 1$', r'exited normally')
    finished(sb, 0, 'stopped spinning (1)')


def case_interrupt_user(sparkler, guest_dir, kind):
    """Ctrl-C while the guest spins at CPL3; stepping there works only off PVM."""
    sb, out = session(sparkler, guest_dir, 'gdb_spin', [
        'continue', 'set var stop_spinning = 2', 'continue', 'info threads', 'stepi',
        'set var stop_user = 1', 'detach'], interrupts=[2, 4])
    has(out, r'Program received signal SIGINT', r'user_spin \(arg=0\) at .*gdb_spin.c',
        r'Thread 1 \(vCPU 0, user mode \(CPL3\)\)', r'Inferior 1 .* detached')
    if kind == 'pvm':
        has(out, r'Remote failure reply')
        check('cannot be single-stepped' in sb.stderr() or sb.running(),
              'the stub says why it refused the step', sb.stderr())
        print('skipped on PVM: single-stepping user-mode (CPL3) code; #DB goes to the guest '
              'there, so the stub refuses the step (checked)')
    finished(sb, 0, 'stopped spinning (2)')


def case_detach(sparkler, guest_dir, kind):
    """Detach from a stopped guest: it runs on and finishes by itself."""
    sb, out = session(sparkler, guest_dir, 'gdb_spin', [
        'continue', 'set var stop_spinning = 1', 'detach'], interrupts=[2])
    has(out, r'Program received signal SIGINT', r'Inferior 1 .* detached')
    finished(sb, 0, 'stopped spinning (1)')
    check('gdb detached; the guest runs on' in sb.stderr(), 'the stub says it', sb.stderr())


def case_no_wait(sparkler, guest_dir, kind):
    """--gdb-no-wait: the guest starts at once; gdb attaches later and stops it."""
    e = elf(guest_dir, 'gdb_spin')
    sb = Sandbox(sparkler, e, extra=['--gdb-no-wait'])
    time.sleep(1)
    check(sb.running(), 'the guest spins without a debugger', sb.stderr())
    out = gdb(e, sb.gdb_target(), ['print spins > 0', 'set var stop_spinning = 1', 'detach'])
    print(out)
    has(out, r'main \(\) at .*gdb_spin.c', r'^\$1 = 1$', r'detached')
    finished(sb, 0, 'stopped spinning (1)')


def case_kill(sparkler, guest_dir, kind):
    """gdb's kill ends the VM: the sandbox exits 5."""
    sb, out = session(sparkler, guest_dir, 'gdb_spin', ['continue', 'kill'], interrupts=[2])
    has(out, r'Program received signal SIGINT', r'killed')
    finished(sb, 5)
    check('killed from gdb' in sb.stderr(), 'the sandbox says why it ended', sb.stderr())


def case_unix(sparkler, guest_dir, kind):
    """--gdb unix:PATH; the socket is gone afterwards."""
    path = '/tmp/sparkler-gdb-test-%d.sock' % os.getpid()
    e = elf(guest_dir, 'gdb_basic')
    sb = Sandbox(sparkler, e, listen='unix:' + path)
    out = gdb(e, path, ['break hw_target', 'continue', 'print y', 'continue'])
    print(out)
    has(out, r'Breakpoint 1, hw_target \(y=42\)', r'^\$1 = 42$', r'exited normally')
    finished(sb, 0)
    check(not os.path.exists(path), 'the socket file is removed')


def case_run(sparkler, guest_dir, kind):
    """`sparkler run --gdb`: two vCPUs (the second waits for INIT/SIPI in KVM's LAPIC)."""
    e = elf(guest_dir, 'gdb_basic')
    sb = Sandbox(sparkler, e, extra=['--cpus', '2'], run=True)
    out = gdb(e, sb.gdb_target(), [
        'break add_one', 'continue', 'print x', 'info threads', 'thread 2', 'print $cs',
        'thread 1', 'next', 'print local', 'continue'])
    print(out)
    has(out, r'Breakpoint 1, add_one \(x=41\)', r'^\$1 = 41$',
        r'^\*\s+1\s+Thread 1 \(vCPU 0, kernel mode\)', r'^\s+2\s+Thread 2 \(vCPU 1',
        r'Switching to thread 2', r'Switching to thread 1', r'^\$3 = 42$', r'exited normally')
    finished(sb, 0, 'knob=7')


def case_options(sparkler, guest_dir, kind):
    """Bad --gdb options: exit status 2 and one line that says why, nothing started."""
    e = elf(guest_dir, 'gdb_basic')
    busy = socket.socket()
    busy.bind(('127.0.0.1', 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    bad = [
        (['sandbox', '--gdb', 'bogus', e], 'use tcp:'),
        (['sandbox', '--gdb', 'tcp:127.0.0.1:70000', e], 'port must be a number'),
        (['sandbox', '--gdb', 'tcp:', e], 'port must be a number'),
        (['sandbox', '--gdb', 'unix:', e], 'path is empty'),
        (['sandbox', '--gdb-no-wait', e], 'needs --gdb'),
        (['sandbox', '--gdb', 'tcp:127.0.0.1:%d' % port, e], 'Address already in use'),
        (['sandbox', '--gdb', 'tcp:no.such.host.invalid:1', e], 'tcp:no.such.host.invalid'),
        (['sandbox', '--gdb', 'unix:/nonexistent/dir/sock', e], 'No such file'),
        (['run', '--kernel', e, '--gdb', 'udp:1'], 'use tcp:'),
        (['run', '--kernel', e, '--gdb-no-wait'], 'needs --gdb'),
    ]
    for args, why in bad:
        r = subprocess.run([sparkler] + args, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=30)
        lines = r.stderr.strip().splitlines()
        check(r.returncode == 2 and len(lines) == 1 and why in lines[0],
              '%s: status %d, stderr %r' % (' '.join(args[:3]), r.returncode, r.stderr))
    busy.close()


CASES = {
    'break': case_break, 'step': case_step, 'setvar': case_setvar, 'hbreak': case_hbreak,
    'hbreak_loop': case_hbreak_loop,
    'watch': case_watch, 'registers': case_registers, 'threads': case_threads,
    'interrupt': case_interrupt, 'interrupt_user': case_interrupt_user, 'detach': case_detach,
    'no_wait': case_no_wait, 'kill': case_kill, 'unix': case_unix, 'run': case_run,
    'options': case_options,
}

if __name__ == '__main__':
    sys.exit(main(CASES))
