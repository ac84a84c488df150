#!/usr/bin/env python3
"""Seed corpus for fuzz_virtq: valid chains (direct, indirect, several in a
row, event index) and one input per rule a hostile driver can break.
Writes fuzz/corpus/virtq/. The input format is in fuzz/fuzz_virtq.c."""
import os
import struct

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "virtq")
os.makedirs(out, exist_ok=True)

DESC, AVAIL, USED, DATA, TABLE = 0x0000, 0x1000, 0x2000, 0x4000, 0x3000
NEXT, WRITE, INDIRECT = 1, 2, 4
RAM, ROM, HOLE = 0x10000, 0x10000, 0x20000


class Guest:
    def __init__(self, qlog=3, flags=3):
        self.size = 1 << qlog
        self.hdr = struct.pack("<BBHHH", flags, qlog, DESC, AVAIL, USED)
        self.ram = bytearray(0x5000)
        self.heads = []

    def desc(self, i, addr, length, flags=0, nxt=0, table=DESC):
        struct.pack_into("<QIHH", self.ram, table + 16 * i, addr, length, flags, nxt)

    def publish(self, head):
        idx = len(self.heads)
        struct.pack_into("<H", self.ram, AVAIL + 4 + 2 * (idx % self.size), head)
        self.heads.append(head)
        struct.pack_into("<H", self.ram, AVAIL + 2, len(self.heads))

    def save(self, name):
        with open(os.path.join(out, name), "wb") as f:
            f.write(self.hdr + bytes(self.ram))


g = Guest()
g.desc(0, DATA, 16, NEXT, 1)
g.desc(1, DATA + 0x100, 32, WRITE)
g.publish(0)
g.save("valid_two_buffers")

g = Guest()
for i in range(8):
    g.desc(i, DATA + 0x80 * i, 0x40, WRITE)
    g.publish(i)
g.save("valid_full_ring")

g = Guest()
g.desc(0, DATA, 8, NEXT, 2, table=TABLE)
g.desc(2, DATA + 0x40, 8, WRITE | NEXT, 1, table=TABLE)
g.desc(1, DATA + 0x80, 8, WRITE, table=TABLE)
g.desc(3, DATA + 0x200, 4, NEXT, 5)
g.desc(5, TABLE, 48, INDIRECT)
g.publish(3)
g.save("valid_indirect")

g = Guest()
g.desc(0, RAM - 8, 16, 0)       # spans RAM and ROM: readable is fine
g.desc(1, DATA, 0, NEXT, 2)     # zero length
g.desc(2, DATA, 4, WRITE)
g.publish(0)
g.publish(1)
struct.pack_into("<H", g.ram, AVAIL + 4 + 2 * 8, 1)  # used_event
g.save("valid_spans_and_event_idx")

g = Guest(qlog=0)
g.desc(0, DATA, 1, WRITE)
g.publish(0)
g.save("valid_size_one")

g = Guest()
g.desc(0, DATA, 8, WRITE | NEXT, 1)
g.desc(1, DATA, 8, WRITE | NEXT, 0)
g.publish(0)
g.save("bad_loop")

g = Guest()
g.publish(300)
g.save("bad_head")

g = Guest()
g.desc(0, DATA, 8, NEXT, 200)
g.publish(0)
g.save("bad_next")

g = Guest()
g.desc(0, 0x80000000, 64, WRITE)
g.publish(0)
g.save("bad_outside_ram")

g = Guest()
g.desc(0, HOLE, 64, 0)
g.publish(0)
g.save("bad_unpopulated")

g = Guest()
g.desc(0, ROM + 8, 8, WRITE)
g.publish(0)
g.save("bad_write_rom")

g = Guest()
g.desc(0, 0xFFFFFFFFFFFFF000, 0x2000, WRITE)
g.publish(0)
g.save("bad_wraps")

g = Guest()
for i in range(12):
    g.desc(i, DATA, 4, WRITE | (NEXT if i < 11 else 0), i + 1, table=TABLE)
g.desc(0, TABLE, 12 * 16, INDIRECT)
g.publish(0)
g.save("bad_indirect_too_long")

g = Guest()
g.desc(0, DATA, 8, WRITE | NEXT, 1, table=TABLE)
g.desc(1, TABLE + 0x100, 16, INDIRECT, table=TABLE)
g.desc(0, TABLE, 32, INDIRECT)
g.publish(0)
g.save("bad_indirect_nested")

g = Guest()
g.desc(0, TABLE, 24, INDIRECT)
g.publish(0)
g.save("bad_indirect_len")

g = Guest(flags=1)
g.desc(0, TABLE, 16, INDIRECT)
g.publish(0)
g.save("bad_indirect_not_negotiated")

g = Guest()
g.desc(0, DATA, 8, WRITE | NEXT, 1)
g.desc(1, DATA, 8, 0)
g.publish(0)
g.save("bad_readable_after_writable")

g = Guest()
struct.pack_into("<H", g.ram, AVAIL + 2, 9)
g.save("bad_avail_jump")

g = Guest()
g.hdr = struct.pack("<BBHHH", 3, 0x80 | 24, DESC, AVAIL, USED)
g.save("bad_size_24")

g = Guest()
g.hdr = struct.pack("<BBHHH", 3, 3, DESC + 8, AVAIL + 1, USED + 2)
g.save("bad_unaligned_rings")

g = Guest()
g.hdr = struct.pack("<BBHHH", 3, 3, DESC, AVAIL, 0xFFF0)
g.save("bad_used_past_ram")
