#!/usr/bin/env python3
"""Seed corpus for fuzz_blk: one valid request of each type (several chains
in a row, direct and indirect), read-only and no-fallocate disks, and the
malformed requests the device must answer or refuse. Writes
fuzz/corpus/blk/. The input format is in fuzz/fuzz_blk.c."""
import os
import struct

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "blk")
os.makedirs(out, exist_ok=True)

DESC, AVAIL, USED, TABLE, DATA = 0x0000, 0x1000, 0x2000, 0x3000, 0x4000
NEXT, WRITE, INDIRECT = 1, 2, 4
T_IN, T_OUT, T_FLUSH, T_GET_ID, T_DISCARD, T_WZ = 0, 1, 4, 8, 11, 13
RW, RO, NOFALLOC = 0, 1 << 3, 2 << 3
EVENT_IDX, INDIRECT_F, FLUSH = 1, 2, 4


class Guest:
    def __init__(self, flags=EVENT_IDX | INDIRECT_F | FLUSH, qlog=5):
        self.size = 1 << qlog
        self.hdr = bytes([flags, qlog])
        self.ram = bytearray(0x8000)
        self.nd = 0      # next free descriptor
        self.heads = 0
        self.at = DATA   # next free byte for headers and data

    def alloc(self, n, fill=b""):
        a = self.at
        self.ram[a:a + len(fill)] = fill
        self.at += (n + 15) & ~15
        return a

    def desc(self, i, addr, length, flags=0, nxt=0, table=DESC):
        struct.pack_into("<QIHH", self.ram, table + 16 * i, addr, length, flags, nxt)

    def chain(self, bufs, indirect=False):
        """bufs: (addr, len, writable); published as the next head."""
        if indirect:
            for k, (a, n, w) in enumerate(bufs):
                self.desc(k, a, n, (WRITE if w else 0) | (NEXT if k + 1 < len(bufs) else 0),
                          k + 1, table=TABLE)
            head = self.nd
            self.desc(head, TABLE, 16 * len(bufs), INDIRECT)
            self.nd += 1
        else:
            head = self.nd
            for k, (a, n, w) in enumerate(bufs):
                self.desc(self.nd, a, n, (WRITE if w else 0) | (NEXT if k + 1 < len(bufs) else 0),
                          self.nd + 1)
                self.nd += 1
        struct.pack_into("<H", self.ram, AVAIL + 4 + 2 * (self.heads % self.size), head)
        self.heads += 1
        struct.pack_into("<H", self.ram, AVAIL + 2, self.heads)

    def req(self, type_, sector, data_len=0, dev_writes=True, hdr_len=16, status=True,
            payload=b"", indirect=False):
        h = self.alloc(16, struct.pack("<IIQ", type_, 0, sector))
        bufs = [(h, hdr_len, False)]
        if data_len:
            bufs.append((self.alloc(data_len, payload), data_len, dev_writes))
        if status:
            bufs.append((self.alloc(1), 1, True))
        self.chain(bufs, indirect)

    def ranges(self, type_, segs):
        data = b"".join(struct.pack("<QII", s, n, f) for s, n, f in segs)
        self.req(type_, 0, len(data), False, payload=data)

    def save(self, name):
        with open(os.path.join(out, name), "wb") as f:
            f.write(self.hdr + bytes(self.ram).rstrip(b"\0"))  # the rest is zeros anyway


g = Guest()
g.req(T_IN, 0, 1024)
g.req(T_OUT, 8, 512, False, payload=b"x" * 512)
g.req(T_FLUSH, 0)
g.req(T_GET_ID, 0, 20)
g.save("mixed")

for disk, name in ((RW, "rw"), (RO, "ro"), (NOFALLOC, "nofalloc")):
    g = Guest(EVENT_IDX | FLUSH | disk)
    g.ranges(T_WZ, [(1, 4, 0), (16, 8, 1)])
    g.ranges(T_DISCARD, [(32, 8, 0)])
    g.req(T_OUT, 100, 1024, False, payload=b"y" * 1024)
    g.save("ranges-" + name)

g = Guest(INDIRECT_F)
g.req(T_IN, 3, 2048, indirect=True)
g.req(T_OUT, 4, 512, False, indirect=True)
g.save("indirect")

g = Guest()
g.req(T_IN, 127, 1024)           # past the end
g.req(T_IN, 1 << 63, 512)        # sector * 512 wraps
g.req(T_IN, 0, 100)              # not whole sectors
g.req(T_IN, 0, 512, False)       # data in the wrong direction
g.req(T_OUT, 0, 512, True)
g.req(0x77, 0, 512)              # unknown type
g.ranges(T_DISCARD, [(0, 8, 1)])  # unmap on a discard
g.save("bad")

g = Guest()
g.req(T_IN, 0, 512, hdr_len=8)   # short header: needs reset
g.save("short-header")

g = Guest()
g.req(T_OUT, 0, 512, False, status=False)  # no status byte
g.save("no-status")
