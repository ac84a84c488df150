#!/usr/bin/env python3
"""Seed corpus for fuzz_hypercall: an embedder's registrations (good,
out of range, twice, after the freeze), lookups, every library number
with its arguments, CONSOLE_WRITE of good and bad buffers, embedder
numbers with and without a handler, and ucalls (ASSERT and PRINT with
good, unterminated and unreadable strings). Writes fuzz/corpus/hypercall/.
The input format is in fuzz/fuzz_hypercall.c."""
import os
import struct

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "hypercall")
os.makedirs(out, exist_ok=True)

RAM, ROM, HOLE = 0x10000, 0x1000, 0x20000


def nr(n):
    """A number in the input's encoding."""
    if n < 0x100:
        return bytes([0, n])
    if 0xf0 <= n < 0xf0 + 0x10000:
        return bytes([1]) + struct.pack("<H", n - 0xf0)
    return bytes([2]) + struct.pack("<Q", n)


def args(*a):
    a = list(a) + [0] * (6 - len(a))
    return b"".join(bytes([1]) + struct.pack("<Q", v & (2 ** 64 - 1)) for v in a)


class Seq:
    def __init__(self, vcpu=0):
        self.b = bytearray([vcpu])

    def register(self, n, name=b"h", handler=0, no_name=False, no_fn=False):
        fl = handler << 4 | (1 if no_name else 0) | (2 if no_fn else 0)
        self.b += bytes([0]) + nr(n) + bytes([fl, len(name)]) + name
        return self

    def lookup(self, n):
        self.b += bytes([1]) + nr(n)
        return self

    def freeze(self):
        self.b += bytes([2])
        return self

    def call(self, n, *a):
        self.b += bytes([3]) + nr(n) + args(*a)
        return self

    def decode(self, kind, n, *a):
        self.b += bytes([4, kind]) + nr(n) + args(*a)
        return self

    def ram(self, gpa, data):
        self.b += bytes([5]) + struct.pack("<HB", gpa, len(data)) + data
        return self

    def name(self, n):
        self.b += bytes([6]) + nr(n)
        return self

    def decode_nomem(self, *a):
        self.b += bytes([7]) + args(*a)
        return self

    def save(self, fname):
        with open(os.path.join(out, fname), "wb") as f:
            f.write(bytes(self.b))


s = Seq(3)
s.register(0x100, b"blk-flush").register(0x200, b"net-kick", 1).register(0xffff, b"last", 2)
s.register(0xff, b"low").register(0x10000, b"high").register(2 ** 64 - 1, b"max")
s.register(0x200, b"again", 3).register(0x300, b"", 0, no_name=True)
s.register(0x301, b"x", 0, no_fn=True).register(0x400, b"n" * 79)
s.lookup(0x100).lookup(0x200).lookup(0x400).lookup(0x101).lookup(0xff).lookup(2 ** 64 - 1)
s.freeze().register(0x500, b"late").lookup(0x500).lookup(0xffff)
s.call(0x100, 1, 2, 3, 4, 5, 6).call(0x200, 7).call(0x201).call(0xffff, 2 ** 63)
s.save("table")

s = Seq(7)
s.call(1, 1, 0x100000, 42).call(2, 0).call(3, 2, 0x30, 1).call(3, 0, 0x40, 3)
s.call(4).call(5).call(8).call(0).call(9).call(0xfe).call(0xff)
for n in range(1, 9):
    s.name(n)
s.name(0).name(9).name(0x100)
s.save("library")

s = Seq()
s.ram(0x1000, b"hello, world\n")
s.call(6, 0x1000, 13).call(6, 0x1000, 0).call(6, 0x1000, 4097).call(6, 0xfff0, 32)
s.call(6, RAM, 60).call(6, RAM + ROM - 1, 2).call(6, HOLE, 1).call(6, 2 ** 64 - 4, 8)
s.call(6, 0x0, 4096).call(6, 0x40000, 1)
s.save("console")

s = Seq()
s.ram(0x2000, b"x == 1\0").ram(0x2100, b"guest/tests/t.c\0").ram(0x3000, b"a line of text")
s.call(7, 3, 0x2000, 0x2100, 42, 1, 2)           # ASSERT
s.call(7, 4, 0x3000, 14)                         # PRINT
s.call(7, 4, 0x3000, 1000).call(7, 4, 0x3000, 0).call(7, 1, 99).call(7, 2, 1, 2)
s.call(7, 3, HOLE, 2 ** 64 - 1, 0).call(7, 3, RAM - 10, RAM + 100, 1)
s.call(7, 4, RAM - 4, 8).call(7, 4, RAM + ROM - 2, 4).call(7, 4, 2 ** 64 - 2, 4)
s.call(7, 99)
s.save("ucall")

s = Seq()
s.ram(0xff00, b"y" * 255)
s.decode(0x80, 7, 3, 0xff00, 0xff01, 5).decode(0x80, 6, 3).decode(3, 7, 3)
s.decode(0x80, 7, 4, 0xff00, 255).decode(0x80, 7, 4, 0xff00, 256)
s.decode_nomem(3, 0x2000).decode_nomem(4, 0, 1).decode_nomem(1, 5)
s.save("decode")
print("wrote corpus to %s" % out)
