#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The gdb stub with a hand-written client: malformed packets, bad
checksums, oversized packets and lengths, unmapped memory, breakpoint
limits, a second client, and clients that go away (mid-packet, while the
guest runs). After each, the VM must keep running and finish by itself.

usage: protocol_test.py SPARKLER GUEST_DIR CASE
"""
import os
import random
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gdbtest import Client, Fail, Sandbox, check, frame, main  # noqa: E402

PACKET_MAX = 0x4000  # what the stub announces


def elf(guest_dir, name):
    return os.path.join(guest_dir, 't_%s.elf' % name)


def symbol(path, name):
    out = subprocess.run(['nm', path], capture_output=True, text=True, check=True).stdout
    m = re.search(r'^([0-9a-f]+) \w %s$' % re.escape(name), out, re.M)
    check(m, 'no symbol %s in %s' % (name, path))
    return int(m.group(1), 16)


def is_error(reply):
    return re.fullmatch(r'E[0-9a-f]{2}', reply) is not None


def expect_error(c, payload):
    r = c.cmd(payload)
    check(is_error(r), '%r should fail, got %r' % (payload[:40], r[:80]))


def finished(sb, status=0, output=None):
    rc = sb.wait()
    check(rc == status, 'the sandbox exited with %d, not %d' % (rc, status), sb.stderr())
    if output:
        check(output in sb.out, 'the guest did not print %r' % output, sb.out + sb.stderr())


# ---- framing ----------------------------------------------------------------------------

def case_framing(sparkler, guest_dir, kind):
    """Checksums, noise, oversized packets, no-ack mode, Ctrl-C when stopped."""
    sb = Sandbox(sparkler, elf(guest_dir, 'gdb_basic'))
    c = Client(sb)
    c.send_raw(b'$?#00')
    check(c.ack() == b'-', 'a bad checksum is answered with -')
    c.send_raw(b'$?#zz')
    check(c.ack() == b'-', 'a checksum that is not hex is answered with -')
    c.send_raw(b'garbage+-\r\n')  # noise, stray acks
    check(c.cmd('?').startswith('T05thread:1;'), 'the stop reason of a waiting guest')
    r = c.cmd('qSupported:multiprocess+;swbreak+;hwbreak+')
    check('PacketSize=%x' % PACKET_MAX in r, 'qSupported names the packet size: %r' % r)
    # a packet one byte longer than announced: acknowledged, then refused
    c.send_raw(frame('m' + '0' * PACKET_MAX))
    check(c.ack() == b'+', 'the long packet is acknowledged')
    check(is_error(c.packet()), 'the long packet is refused')
    # a '$' in the middle restarts the packet
    c.send_raw(b'$m100000,$' + frame('qC')[1:])
    c.ack()
    check(c.packet() == 'QC1', 'a restarted packet is read from its new start')
    # Ctrl-C while stopped: nothing is owed, the stub stays in step
    c.send_raw(b'\x03')
    check(c.cmd('?').startswith('T05'), 'still stopped after a stray Ctrl-C')
    # no-ack mode
    check(c.cmd('QStartNoAckMode') == 'OK', 'no-ack mode')
    c.send_raw(frame('qC'))
    check(c.packet() == 'QC1', 'replies come without acks')
    c.send_raw(frame('D'))
    check(c.packet() == 'OK', 'detach')
    c.close()
    finished(sb, 0, 'knob=7')


# ---- commands ----------------------------------------------------------------------------

def case_commands(sparkler, guest_dir, kind):
    """Malformed and unsupported commands, registers, threads, qXfer."""
    sb = Sandbox(sparkler, elf(guest_dir, 'gdb_basic'))
    c = Client(sb)
    for bad in ['m', 'mzz,1', 'm1,', 'm10000000000000000,1', 'M100000,2:abc', 'Z9,0,0',
                'Z0,1', 'Hgzz', 'vCont;x', 'vCont;s:', 'p', 'P10=00', 'P10=zzzzzzzzzzzzzzzz',
                'G0', 'Gzz', 'g0', 'c1x', 'qXfer:features:read:nosuch.xml:0,10', 'T', 'Hg9',
                'T9', 'qThreadExtraInfo,9', 'z0,100000,1', 'P12=0800000000000000']:
        expect_error(c, bad)
    for unsupported in ['qFoo', 'vMustReplyEmpty', 'qOffsets', '!', 'bc', 'qXfer:auxv:read::0,10']:
        check(c.cmd(unsupported) == '', '%r is answered with an empty packet' % unsupported)
    check(c.cmd('vCont?') == 'vCont;c;C;s;S;r', 'vCont actions')
    check(c.cmd('qfThreadInfo') == 'm1', 'one vCPU before CPU_UP')
    check(c.cmd('qsThreadInfo') == 'l', 'end of the thread list')
    check(c.cmd('T1') == 'OK' and c.cmd('Hg1') == 'OK' and c.cmd('Hc-1') == 'OK', 'threads')
    check(bytes.fromhex(c.cmd('qThreadExtraInfo,1')).decode() == 'vCPU 0, kernel mode',
          'thread extra info')
    check(c.cmd('qAttached') == '1', 'attached to a running VM')
    regs = c.cmd('g')
    check(len(regs) == 2 * (16 * 8 + 8 + 4 + 6 * 4 + 8 * 10 + 8 * 4 + 16 * 16 + 4 + 8 * 8),
          'the g reply has every register: %d chars' % len(regs))
    entry = symbol(elf(guest_dir, 'gdb_basic'), '_start')
    check(c.cmd('p10') == entry.to_bytes(8, 'little').hex(), 'rip is the entry point')
    check(c.cmd('p12') == '08000000', 'cs (register 18) is 8')
    check(regs[280:288] == '08000000', 'g has cs where the description says')
    check(is_error(c.cmd('P12=10000000')), 'a selector cannot change')
    check(c.cmd('P12=08000000') == 'OK', 'but can be written with its value')
    check(c.cmd('p1f') == 'x' * 20, 'st7 is unavailable')
    check(c.cmd('G' + regs) == 'OK', 'G with what g gave')
    check(c.cmd('g') == regs, 'G changed nothing')
    check(c.cmd('P3=efbeadde00000000') == 'OK' and c.cmd('p3') == 'efbeadde00000000', 'P rdx')
    check(is_error(c.cmd('P3=00')), 'P with the wrong size')
    check(is_error(c.cmd('G' + regs + '00')), 'G longer than the registers')
    check(is_error(c.cmd('pffff')), 'no such register')
    xml = ''
    off = 0
    while True:
        r = c.cmd('qXfer:features:read:target.xml:%x,%x' % (off, 200))
        check(r[:1] in ('m', 'l'), 'qXfer reply %r' % r[:20])
        xml += r[1:]
        off += len(r) - 1
        if r[0] == 'l':
            break
    check('<architecture>i386:x86-64</architecture>' in xml and xml.count('<reg ') == 65,
          'the target description, read in pieces')
    check(c.cmd('qXfer:features:read:target.xml:ffffff,10') == 'l', 'past the end')
    c.send_raw(frame('k'))  # no reply to k
    c.close()
    finished(sb, 5)


# ---- memory ---------------------------------------------------------------------------------

def case_memory(sparkler, guest_dir, kind):
    """Reads and writes of guest-virtual memory, mapped and not, X with escapes."""
    e = elf(guest_dir, 'gdb_basic')
    sb = Sandbox(sparkler, e, extra=['--mem', '32M'])
    c = Client(sb)
    knob = symbol(e, 'knob')
    check(c.cmd('m%x,4' % knob) == '07000000', 'knob reads 7')
    for addr in [0x200000000, 0x8000000000000000, 0x80000000, 0xfffffffffffffff0]:
        expect_error(c, 'm%x,8' % addr)  # not mapped, non-canonical, no RAM, wraps
    expect_error(c, 'M%x,4:01020304' % 0x80000000)
    expect_error(c, 'X%x,1:a' % 0x200000000)
    ram_end = 32 << 20
    r = c.cmd('m%x,10' % (ram_end - 4))
    check(len(r) == 8, 'a read across the end of RAM is short: %r' % r)
    r = c.cmd('m100000,100000')
    check(len(r) == PACKET_MAX, 'a long read is cut to what a packet holds: %d' % len(r))
    check(c.cmd('m100000,0') == '', 'a read of nothing')
    # X: binary with every byte that must be escaped
    data = bytes([0x23, 0x24, 0x7d, 0x2a, 0x00, 0xff, 0x2a, 0x01])
    esc = b''.join(b'}' + bytes([b ^ 0x20]) if b in b'#$}*' else bytes([b]) for b in data)
    check(c.cmd(b'X%x,0:' % knob) == 'OK', 'an empty X (gdb probes with it)')
    c.send_raw(frame(b'X%x,%x:' % (knob, len(data)) + esc))
    c.ack()
    check(c.packet() == 'OK', 'X with escapes')
    check(c.cmd('m%x,%x' % (knob, len(data))) == data.hex(), 'X wrote what it was given')
    expect_error(c, 'X%x,3:ab' % knob)  # shorter than said
    expect_error(c, 'X%x,1:abc' % knob)  # longer than said
    check(c.cmd('M%x,4:2a000000' % knob) == 'OK', 'M')
    check(c.cmd('m%x,4' % knob) == '2a000000', 'M wrote knob = 42')
    check(c.cmd('D') == 'OK', 'detach')
    c.close()
    finished(sb, 0, 'knob=42')


def case_points(sparkler, guest_dir, kind):
    """Breakpoint and watchpoint bookkeeping: limits, removal, duplicates."""
    e = elf(guest_dir, 'gdb_basic')
    sb = Sandbox(sparkler, e)
    c = Client(sb)
    base = symbol(e, 'add_one')
    for i in range(4):
        check(c.cmd('Z1,%x,1' % (base + i)) == 'OK', 'hardware breakpoint %d' % i)
    expect_error(c, 'Z1,%x,1' % (base + 4))  # four debug registers
    check(c.cmd('Z1,%x,1' % base) == 'OK', 'the same breakpoint twice shares its register')
    check(c.cmd('z1,%x,1' % base) == 'OK', 'removed (both insertions)')
    expect_error(c, 'z1,%x,1' % base)  # not there any more
    check(c.cmd('Z0,%x,1' % base) == 'OK', 'a software breakpoint in the freed register'
          if kind == 'pvm' else 'a software breakpoint (int3)')
    for i in range(1, 4):
        check(c.cmd('z1,%x,1' % (base + i)) == 'OK', 'remove %d' % i)
    watched = symbol(e, 'watched')
    check(c.cmd('Z2,%x,4' % watched) == 'OK', 'write watchpoint')
    r = c.cmd('Z3,%x,4' % watched)
    if kind == 'pvm':
        check(is_error(r), 'a read watchpoint is refused on PVM: %r' % r)
        print('note: on PVM read/access watchpoints are refused (KVM does not check data '
              'breakpoints for emulated kernel code); Z2 is emulated by single-stepping')
        expect_error(c, 'Z2,%x,80' % watched)  # emulated: at most 64 bytes
    else:
        check(r == 'OK', 'a read watchpoint: %r' % r)
        check(c.cmd('z3,%x,4' % watched) == 'OK', 'removed')
    check(c.cmd('z2,%x,4' % watched) == 'OK', 'removed')
    # a breakpoint that is hit, then continue to the end
    check(c.cmd('vCont;c') == 'T05thread:1;', 'stopped at the breakpoint (no swbreak asked)')
    check(c.cmd('p10') == base.to_bytes(8, 'little').hex(), 'at add_one')
    check(c.cmd('z0,%x,1' % base) == 'OK', 'removed')
    c.send_raw(frame('c'))
    c.ack()
    check(c.packet() == 'W00', 'the guest exits: W00')
    c.close()
    finished(sb, 0)


# ---- clients that go away -----------------------------------------------------------------

def case_disconnect(sparkler, guest_dir, kind):
    """A second client is turned away; the first goes away mid-packet; the VM runs on."""
    e = elf(guest_dir, 'gdb_basic')
    sb = Sandbox(sparkler, e)
    c = Client(sb)
    check(c.cmd('Z1,%x,1' % symbol(e, 'hw_target')) == 'OK', 'a breakpoint left behind')
    c2 = Client(sb)
    c2.s.settimeout(10)
    check(c2.s.recv(16) == b'', 'a second client is turned away')
    c2.close()
    c.send_raw(b'$m100000,4')  # and never the rest
    c.close()
    finished(sb, 0, 'knob=7')
    check('in the middle of a packet' in sb.stderr(), 'the stub says how it ended', sb.stderr())


def case_disconnect_running(sparkler, guest_dir, kind):
    """The client goes away while the guest runs; a new one attaches and ends it."""
    e = elf(guest_dir, 'gdb_spin')
    sb = Sandbox(sparkler, e)
    c = Client(sb)
    check(c.cmd('Z2,%x,4' % symbol(e, 'stop_user')) == 'OK', 'a watchpoint left behind')
    c.send_raw(frame('c'))
    c.ack()
    time.sleep(0.5)
    c.close()  # gdb owed a stop reply: nobody wants it now
    time.sleep(1)
    check(sb.running(), 'the guest runs on without a debugger', sb.stderr())
    c = Client(sb)  # attaching stops it
    check(c.cmd('?').startswith('T05thread:1;'), 'stopped on attach')
    check(c.cmd('M%x,4:01000000' % symbol(e, 'stop_spinning')) == 'OK', 'end the spin')
    # garbage, then a good packet: the stub keeps its footing
    rnd = random.Random(5)
    junk = bytes(rnd.choice(b'$#}*+-ab0123\x00\xff') for _ in range(3000))  # no command
    c.send_raw(junk + b'#00')
    time.sleep(0.2)
    c.send_raw(frame('qC'))
    deadline = time.time() + 10
    while c.packet() != 'QC1':  # skip the replies the junk earned
        check(time.time() < deadline, 'no answer to qC after junk')
    c.send_raw(frame('D'))
    c.close()
    finished(sb, 0, 'stopped spinning (1)')


def case_reconnect_loop(sparkler, guest_dir, kind):
    """Many short connections, some cut at random points of a packet."""
    e = elf(guest_dir, 'gdb_spin')
    sb = Sandbox(sparkler, e, extra=['--gdb-no-wait'])
    rnd = random.Random(7)
    spins = symbol(e, 'spins')
    for i in range(20):
        c = Client(sb)
        pkt = frame(rnd.choice(['g', 'm100000,40', 'qSupported', 'Z1,100000,1', 'c', 'vCont;s:1',
                                'X%x,2:ab' % spins, 'qXfer:features:read:target.xml:0,fff']))
        c.send_raw(pkt[:rnd.randrange(1, len(pkt) + 1)])
        if rnd.random() < 0.3:
            c.send_raw(b'\x03')
        c.close()
        check(sb.running(), 'the sandbox survives connection %d' % i, sb.stderr())
    c = Client(sb)
    check(c.cmd('M%x,4:01000000' % symbol(e, 'stop_spinning')) == 'OK', 'end the spin')
    check(c.cmd('D') == 'OK', 'detach')
    c.close()
    finished(sb, 0, 'stopped spinning (1)')


# ---- resumes with a signal, Hc -------------------------------------------------------------

def rip(c, tid):
    check(c.cmd('Hg%x' % tid) == 'OK', 'Hg%x' % tid)
    return int.from_bytes(bytes.fromhex(c.cmd('p10')), 'little')


def case_signals(sparkler, guest_dir, kind):
    """C sig, S sig, vCont;C sig, vCont;S sig: the signal is accepted and ignored, as
    QEMU's system-mode stub does; each resumes or steps like c and s and stops properly."""
    e = elf(guest_dir, 'gdb_basic')
    sb = Sandbox(sparkler, e)
    c = Client(sb)
    entry = symbol(e, '_start')
    check(rip(c, 1) == entry, 'waiting at the entry point')
    # S05: one instruction (entry code runs at CPL0: steppable on every host)
    check(c.cmd('S05') == 'T05thread:1;', 'S05 stops with a SIGTRAP stop reply')
    pc1 = rip(c, 1)
    check(pc1 != entry, 'S05 stepped: rip %#x is no longer the entry' % pc1)
    check(c.cmd('vCont;S05:1') == 'T05thread:1;', 'vCont;S05:1 stops with a stop reply')
    pc2 = rip(c, 1)
    check(pc2 != pc1, 'vCont;S05:1 stepped: rip %#x -> %#x' % (pc1, pc2))
    # a signal gdb would otherwise deliver (SIGSEGV, 0b) is ignored just the same
    check(c.cmd('S0b') == 'T05thread:1;', 'S0b steps too')
    pc3 = rip(c, 1)
    check(pc3 != pc2, 'S0b stepped: rip %#x -> %#x' % (pc2, pc3))
    # C05 and vCont;C05 run to hardware breakpoints
    add_one, hw_target = symbol(e, 'add_one'), symbol(e, 'hw_target')
    check(c.cmd('Z1,%x,1' % add_one) == 'OK' and c.cmd('Z1,%x,1' % hw_target) == 'OK',
          'two hardware breakpoints')
    check(c.cmd('vCont;C05') == 'T05thread:1;', 'vCont;C05 runs to the breakpoint')
    check(rip(c, 1) == add_one, 'stopped at add_one')
    # as gdb does, take the breakpoint under rip out before resuming (resuming with it in
    # place steps over it as well: case rearm)
    check(c.cmd('z1,%x,1' % add_one) == 'OK', 'add_one breakpoint removed')
    check(c.cmd('C05') == 'T05thread:1;', 'C05 runs to the next breakpoint')
    check(rip(c, 1) == hw_target, 'stopped at hw_target')
    check(c.cmd('z1,%x,1' % hw_target) == 'OK', 'hw_target breakpoint removed')
    check(c.cmd('m%x,4' % symbol(e, 'counter')) == '2a000000', 'add_one ran: counter = 42')
    # vCont;C02 (SIGINT, what gdb passes after a Ctrl-C) runs the guest to its end
    c.send_raw(frame('vCont;C02'))
    check(c.ack() == b'+', 'vCont;C02 taken')
    check(c.packet() == 'W00', 'the guest ran to its end: W00')
    c.close()
    finished(sb, 0, 'knob=7 counter=42')


def case_hc(sparkler, guest_dir, kind):
    """Hc picks the vCPU that a plain s steps and c continues (two vCPUs).

    All-stop: a step of one vCPU lets the other run. So thread 2 is stepped
    first, while thread 1 only spins waiting for it (worker_mark stores
    worker_done in its 6th instruction; two steps stay before that), and for
    the step of thread 1, thread 2 is parked on a `jmp .` written over the
    start of worker_mark, then put back, so neither step races the other."""
    e = elf(guest_dir, 'gdb_smp')
    sb = Sandbox(sparkler, e, extra=['--cpus', '2'])
    c = Client(sb)
    mark = symbol(e, 'worker_mark')
    check(c.cmd('Z1,%x,1' % mark) == 'OK', 'a breakpoint in the second vCPU\'s code')
    check(c.cmd('c') == 'T05thread:2;', 'vCPU 1 (thread 2) stops at worker_mark')
    check(c.cmd('z1,%x,1' % mark) == 'OK', 'removed')
    check(c.cmd('qfThreadInfo') == 'm1,2', 'two threads')
    check(rip(c, 2) == mark, 'thread 2 is at worker_mark')
    # Hc2: a plain s steps thread 2 (the stopped thread, and now the chosen one)
    check(c.cmd('Hc2') == 'OK', 'Hc2')
    check(c.cmd('s') == 'T05thread:2;', 'after Hc2, s steps thread 2 and says so')
    n2 = rip(c, 2)
    check(n2 != mark, 'thread 2 stepped off worker_mark: %#x' % n2)
    check(c.cmd('s') == 'T05thread:2;', 'Hc stays: s steps thread 2 again')
    n2b = rip(c, 2)
    check(n2b != n2, 'thread 2 moved again: %#x -> %#x' % (n2, n2b))
    # Hc1: now a plain s steps thread 1, although thread 2 stopped last
    saved = c.cmd('m%x,2' % mark)
    check(c.cmd('M%x,2:ebfe' % mark) == 'OK', 'jmp . over the start of worker_mark')
    check(c.cmd('Hg2') == 'OK' and c.cmd('P10=' + mark.to_bytes(8, 'little').hex()) == 'OK',
          'thread 2 parked on it')
    t1 = rip(c, 1)
    check(c.cmd('Hc1') == 'OK', 'Hc1')
    check(c.cmd('s') == 'T05thread:1;', 'after Hc1, s steps thread 1 and says so')
    n1 = rip(c, 1)
    check(n1 != t1, 'thread 1 moved: %#x -> %#x' % (t1, n1))
    check(rip(c, 2) == mark, 'thread 2 stayed parked while thread 1 stepped')
    check(c.cmd('M%x,2:%s' % (mark, saved)) == 'OK', 'worker_mark restored')
    check(c.cmd('Hg2') == 'OK' and c.cmd('P10=' + n2b.to_bytes(8, 'little').hex()) == 'OK',
          'thread 2 back where its steps left it')
    # c with Hc1: every vCPU resumes (all-stop) and the guest finishes
    c.send_raw(frame('c'))
    check(c.ack() == b'+', 'c taken')
    check(c.packet() == 'W00', 'c after Hc1 runs the guest to its end: W00')
    c.close()
    finished(sb, 0, 'worker_done=7')

# ---- resuming from a hardware breakpoint -----------------------------------------------------

def calls_now(c, e):
    return int.from_bytes(bytes.fromhex(c.cmd('m%x,4' % symbol(e, 'calls'))), 'little')


def rearm(sparkler, guest_dir, z):
    """A hardware breakpoint gdb leaves in place (raw clients; gdb's hbreak when it does not
    step over it): each resume from it runs the instruction once and the next stop is the
    next call, one loop iteration later, for c, vCont;c, C05, and s then vCont;c. z: 'Z1'
    (a debug register) or 'Z0' (int3 on VMX/SVM, where the stub steps over its own int3;
    a debug register on PVM)."""
    e = elf(guest_dir, 'gdb_loop')
    sb = Sandbox(sparkler, e)
    c = Client(sb)
    tick = symbol(e, 'tick')
    check(c.cmd('%s,%x,1' % (z, tick)) == 'OK', '%s at tick' % z)
    for n, resume in enumerate(['c', 'c', 'vCont;c', 'C05']):
        check(c.cmd(resume) == 'T05thread:1;', '%s: a stop reply' % resume)
        check(rip(c, 1) == tick, '%s: stopped at tick' % resume)
        got = calls_now(c, e)
        check(got == n, '%s: stop %d at tick after %d calls, not %d (a resume from the '
              'breakpoint must run the loop once more)' % (resume, n + 1, n, got))
    # a step from the breakpoint leaves it (one instruction, not a stop in place)
    check(c.cmd('s') == 'T05thread:1;', 's from the breakpoint')
    check(rip(c, 1) != tick, 's moved off tick')
    check(c.cmd('vCont;c') == 'T05thread:1;', 'vCont;c after the step')
    check(rip(c, 1) == tick and calls_now(c, e) == 4, 'the fifth call stops at tick')
    check(c.cmd('%s,%x,1' % (z.lower(), tick)) == 'OK', 'removed')
    c.send_raw(frame('c'))
    c.ack()
    check(c.packet() == 'W00', 'the guest runs to its end: W00')
    c.close()
    finished(sb, 0, 'calls=5')


def case_rearm(sparkler, guest_dir, kind):
    rearm(sparkler, guest_dir, 'Z1')


def case_rearm_sw(sparkler, guest_dir, kind):
    rearm(sparkler, guest_dir, 'Z0')


def case_rearm_smp(sparkler, guest_dir, kind):
    """Two vCPUs both calling tick past one hardware breakpoint, resumed with c every time:
    every call on each vCPU is reported exactly once, in order (a stop at tick on thread N
    sees N's counter equal to N's earlier stops). A vCPU whose hit was dropped while the
    other stopped the VM hits again when it runs; one stopped while stepping over the
    breakpoint does not report the same call twice."""
    e = elf(guest_dir, 'gdb_loop')
    sb = Sandbox(sparkler, e, extra=['--cpus', '2'])
    c = Client(sb)
    tick = symbol(e, 'tick')
    counter = {1: symbol(e, 'calls'), 2: symbol(e, 'calls1')}
    check(c.cmd('M%x,4:01000000' % symbol(e, 'use_worker')) == 'OK', 'start the worker')
    check(c.cmd('Z1,%x,1' % tick) == 'OK', 'a hardware breakpoint at tick')
    seen = {1: 0, 2: 0}
    for n in range(10):
        r = c.cmd('c')
        m = re.fullmatch(r'T05thread:([12]);', r)
        check(m, 'stop %d: a stop reply with a thread: %r' % (n + 1, r))
        t = int(m.group(1))
        check(rip(c, t) == tick, 'stop %d: thread %d at tick' % (n + 1, t))
        got = int.from_bytes(bytes.fromhex(c.cmd('m%x,4' % counter[t])), 'little')
        check(got == seen[t], 'stop %d: thread %d at its call %d, not %d (stops so far %r)'
              % (n + 1, t, got + 1, seen[t] + 1, seen))
        seen[t] += 1
    check(seen == {1: 5, 2: 5}, 'five stops on each vCPU: %r' % seen)
    check(c.cmd('z1,%x,1' % tick) == 'OK', 'removed')
    c.send_raw(frame('c'))
    c.ack()
    check(c.packet() == 'W00', 'the guest runs to its end: W00')
    c.close()
    finished(sb, 0, 'calls=5 calls1=5')

CASES = {
    'framing': case_framing, 'commands': case_commands, 'memory': case_memory,
    'points': case_points, 'disconnect': case_disconnect,
    'disconnect_running': case_disconnect_running, 'reconnect_loop': case_reconnect_loop,
    'signals': case_signals, 'hc': case_hc, 'rearm': case_rearm, 'rearm_sw': case_rearm_sw,
    'rearm_smp': case_rearm_smp,
}

if __name__ == '__main__':
    sys.exit(main(CASES))
