# SPDX-License-Identifier: Apache-2.0
"""Helpers of the gdb tests: a sandbox with --gdb, Debian's gdb in batch
mode, and a raw GDB remote protocol client for what gdb never sends."""
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

SKIP = 77
_started = []  # every monitor a case started: none outlives the test


class Fail(Exception):
    pass


def check(cond, what, output=''):
    if not cond:
        raise Fail(what + ('\n--- output ---\n' + output if output else ''))


def kvm_kind(sparkler):
    """'vmx', 'svm', 'pvm' or 'unknown'; exits 77 when KVM cannot be used."""
    r = subprocess.run([sparkler, 'kvm-info'], capture_output=True, text=True, timeout=30)
    m = re.match(r'kvm: (\S+) \((.*)\)', r.stdout)
    if r.returncode != 0 or not m:
        print('SKIP: no usable KVM here: ' + (r.stdout + r.stderr).strip())
        sys.exit(SKIP)
    if not have_gdb():
        print('SKIP: gdb is not installed (scripts/deps.sh test installs it)')
        sys.exit(SKIP)
    return m.group(1)


def have_gdb():
    try:
        subprocess.run(['gdb', '--version'], capture_output=True, timeout=30)
        return True
    except (OSError, subprocess.SubprocessError):
        return False


class Sandbox:
    """`sparkler sandbox --gdb ADDR GUEST` in the background; with run=True
    `sparkler run --kernel GUEST` instead (a guest-SDK program boots through
    the same ELF loader as a vmlinux)."""

    def __init__(self, sparkler, elf, listen='tcp:127.0.0.1:0', extra=(), run=False):
        if run:
            args = [sparkler, 'run', '--kernel', elf, '--serial', 'none', '--mem', '64M']
        else:
            args = [sparkler, 'sandbox', elf]
        self.proc = subprocess.Popen(args + ['--gdb', listen, *extra], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _started.append(self)
        self.err_lines = []
        self.out = ''
        self.address = None
        self._listening = threading.Event()
        self._err = threading.Thread(target=self._read_err, daemon=True)
        self._err.start()
        self._out = threading.Thread(target=self._read_out, daemon=True)
        self._out.start()
        if not self._listening.wait(30):
            self.kill()
            raise Fail('the sandbox never said where it listens:\n' + self.stderr())

    def _read_err(self):
        for line in self.proc.stderr:
            self.err_lines.append(line)
            m = re.search(r'listening on (\S+?);?(\s|$)', line)
            if m:
                self.address = m.group(1)
                self._listening.set()
        self._listening.set()

    def _read_out(self):
        self.out = self.proc.stdout.read()

    def stderr(self):
        return ''.join(self.err_lines)

    def gdb_target(self):
        """What gdb's `target remote` wants: :PORT or a socket path."""
        kind, rest = self.address.split(':', 1)
        return ':' + rest.rsplit(':', 1)[1] if kind == 'tcp' else rest

    def port(self):
        return int(self.address.rsplit(':', 1)[1])

    def wait(self, timeout=60):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise Fail('the sandbox did not finish within %d s:\n%s' % (timeout, self.stderr()))
        self._err.join(5)
        self._out.join(5)
        return rc

    def running(self):
        return self.proc.poll() is None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def gdb(elf, target, commands, interrupts=(), timeout=90, connected=None):
    """Run gdb -batch with commands (after `target remote`); send SIGINT at
    each time in interrupts (seconds from the start, or from when connected()
    first says true: the stub has the debugger, so a slow gdb (the bed's TCG)
    is never interrupted while it starts). Returns the output."""
    args = ['gdb', '-batch', '-nx', '-ex', 'set pagination off', '-ex', 'set confirm off',
            '-ex', 'target remote ' + target]
    for c in commands:
        args += ['-ex', c]
    args.append(elf)
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    start = time.monotonic()
    while interrupts and connected and not connected() and p.poll() is None and \
            time.monotonic() < start + timeout:
        time.sleep(0.05)
    start = time.monotonic()
    for t in interrupts:
        time.sleep(max(0, start + t - time.monotonic()))
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        raise Fail('gdb did not finish within %d s' % timeout, out)
    return out


# ---- a raw client -------------------------------------------------------------

def checksum(payload):
    return sum(payload) & 0xff


def frame(payload):
    if isinstance(payload, str):
        payload = payload.encode('latin-1')
    return b'$' + payload + b'#%02x' % checksum(payload)


class Client:
    """The GDB remote protocol by hand, for what gdb never sends."""

    def __init__(self, sandbox):
        kind, rest = sandbox.address.split(':', 1)
        if kind == 'tcp':
            self.s = socket.create_connection(('127.0.0.1', sandbox.port()), timeout=30)
        else:
            self.s = socket.socket(socket.AF_UNIX)
            self.s.settimeout(30)
            self.s.connect(rest)
        self.buf = b''

    def send_raw(self, data):
        self.s.sendall(data)

    def _byte(self):
        while not self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise Fail('the stub closed the connection')
            self.buf += chunk
        b, self.buf = self.buf[:1], self.buf[1:]
        return b

    def ack(self):
        """The next '+' or '-'."""
        while True:
            b = self._byte()
            if b in (b'+', b'-'):
                return b

    def packet(self):
        """The next packet's payload (checksum checked, '+' sent)."""
        while self._byte() != b'$':
            pass
        data = b''
        while True:
            b = self._byte()
            if b == b'#':
                break
            data += b
        cs = self._byte() + self._byte()
        check(int(cs, 16) == checksum(data), 'bad checksum from the stub: %r' % data)
        self.send_raw(b'+')
        return data.decode('latin-1')

    def cmd(self, payload):
        """Send a packet, expect '+', return the reply."""
        self.send_raw(frame(payload))
        a = self.ack()
        check(a == b'+', 'the stub did not take %r: %r' % (payload, a))
        return self.packet()

    def close(self):
        self.s.close()


def main(cases):
    """tests/gdb/<script> SPARKLER GUEST_DIR CASE"""
    if len(sys.argv) != 4 or sys.argv[3] not in cases:
        print('usage: %s SPARKLER GUEST_DIR CASE (%s)' % (sys.argv[0], ', '.join(cases)))
        return 2
    sparkler, guest_dir, case = sys.argv[1:]
    kind = kvm_kind(sparkler)
    print('kvm: %s' % kind)
    try:
        cases[case](sparkler, guest_dir, kind)
    except Fail as e:
        print('FAIL: %s' % e)
        for sb in _started:
            if sb.running():
                print('--- the monitor, still running, killed; its stderr ---\n' + sb.stderr())
        return 1
    finally:
        for sb in _started:
            sb.kill()
    print('PASS: %s' % case)
    return 0
