#!/usr/bin/env python3
"""Seed corpus for fuzz_pci: what firmware and a guest driver do with PCI
config space (mechanism #1 and ECAM probes, BAR sizing and moving,
capability walks, MSI-X programming, the VIRTIO_PCI_CAP_PCI_CFG window)
and with the virtio transport behind it (negotiation, queues, notifies,
console input). Writes fuzz/corpus/pci/. The input format is in
fuzz/fuzz_pci.c."""
import os
import struct

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "pci")
os.makedirs(out, exist_ok=True)

W = {1: 0, 2: 1, 4: 2, 8: 3}
RNG, CON = 0, 1          # selector bit 0
RNG_SLOT, CON_SLOT = 1, 2
RNG_BAR, CON_BAR = 0xc0000000, 0xc0008000
NOTIFY, COMMON = 0x3000, 0x0000
NEXT, WRITE = 1, 2


class Seq:
    def __init__(self):
        self.b = bytearray()

    def op(self, kind, width=4, sel=0, *fields):
        self.b.append(kind | W[width] << 4 | sel << 6)
        for fmt, v in fields:
            self.b += struct.pack("<" + fmt, v) if fmt != "3" else struct.pack("<I", v)[:3]
        return self

    # mechanism #1
    def cf8(self, v, port=0, width=4):
        return self.op(0, width, 0, ("B", port), ("I", v))

    def latch(self, slot, reg, fn=0):
        return self.op(2, 4, 0, ("B", slot | fn << 5), ("B", reg))

    def cfc_read(self, port=4, width=4):
        return self.op(1, width, 0, ("B", port))

    def cfc_write(self, v, port=4, width=4):
        return self.cf8(v, port, width)

    # ECAM
    def ecam_w(self, slot, reg, v, width=4):
        return self.op(3, width, 0, ("3", slot << 15 | reg), ("I", v))

    def ecam_r(self, slot, reg, width=4):
        return self.op(4, width, 0, ("3", slot << 15 | reg))

    # the device's BAR (where it is decoded now)
    def bar_w(self, dev, off, v, width=4):
        return self.op(5, width, dev, ("H", off), ("Q", v))

    def bar_r(self, dev, off, width=4):
        return self.op(6, width, dev, ("H", off))

    def window_w(self, off, v, width=4):
        return self.op(7, width, 0, ("I", off), ("Q", v))

    def ram(self, gpa, data):
        self.b += bytes([8]) + struct.pack("<HB", gpa, len(data)) + data
        return self

    def console_input(self, data):
        self.b += bytes([9 | CON << 6, len(data) << 2]) + data
        return self

    def resize(self, cols, rows):
        self.b += bytes([9 | CON << 6, 1]) + struct.pack("<HH", cols, rows)
        return self

    def msix_signal(self, dev, vec):
        self.b += bytes([9 | dev << 6, 2 | vec << 2])
        return self

    def start(self, dev, features=0x03, qsize=4, rings=0x0000):
        return self.op(10, 4, dev, ("B", features), ("B", qsize), ("H", rings))

    def pcicfg(self, dev, off, width, write=False, v=0):
        return self.op(11, width, dev | (2 if write else 0), ("H", off), ("I", v))

    def msix_entry(self, dev, vec, data, flags=0):
        return self.op(12, 4, dev, ("B", vec), ("I", data), ("B", flags))

    def msix_ctrl(self, dev, v):
        return self.op(13, 2, dev, ("H", v))

    def host_w(self, dev, reg, v, width=4):
        return self.op(14, width, dev, ("B", reg), ("I", v))

    def host_r(self, dev, reg, width=4, ext=False):
        return self.op(15, width, dev | (2 if ext else 0), ("B", reg))

    def save(self, name):
        with open(os.path.join(out, name), "wb") as f:
            f.write(bytes(self.b))


def desc(i, addr, length, flags=0, nxt=0):
    return struct.pack("<QIHH", addr, length, flags, nxt)


def avail(heads):
    return struct.pack("<HH", 0, len(heads)) + b"".join(struct.pack("<H", h) for h in heads)


# firmware's probe: every slot's vendor through 0xCFC at each width, then ECAM
s = Seq()
for slot in range(6):
    s.latch(slot, 0).cfc_read(4, 4).cfc_read(6, 2).cfc_read(4, 1)
s.latch(1, 0, fn=1).cfc_read()
s.cf8(0x00000800).cfc_read()                 # enable bit clear
s.cf8(0x80010800).cfc_read()                 # bus 1
s.cfc_read(0, 4).cfc_read(1, 1).cfc_read(0, 2)   # the latch itself
s.cfc_read(7, 1).cfc_read(5, 2).cfc_read(6, 4)   # odd ports, past 0xCFF
for slot in (0, 1, 2, 3):
    s.ecam_r(slot, 0).ecam_r(slot, 8).ecam_r(slot, 0x2c).ecam_r(slot, 0x3d, 1)
s.ecam_r(1, 2, 4).ecam_r(1, 0xffe, 2).ecam_r(1, 0xffc, 4).ecam_r(1, 0x100)
s.save("probe")

# a capability walk as Linux does it, both devices
s = Seq()
for slot in (RNG_SLOT, CON_SLOT):
    s.ecam_r(slot, 6, 2).ecam_r(slot, 0x34, 1)
    for at in (0x40, 0x50, 0x64, 0x74, 0x84, 0x88, 0x98):
        s.ecam_r(slot, at, 1).ecam_r(slot, at + 1, 1).ecam_r(slot, at + 3, 1)
        s.ecam_r(slot, at + 8, 4).ecam_r(slot, at + 12, 4)
s.save("caps")

# BAR sizing: all-ones, read back, restore; then a move and back
s = Seq()
for slot, base in ((RNG_SLOT, RNG_BAR), (CON_SLOT, CON_BAR)):
    s.latch(slot, 4).cfc_write(0, 4, 2)      # memory off
    s.latch(slot, 0x10).cfc_write(0xffffffff).cfc_read()
    s.latch(slot, 0x14).cfc_write(0xffffffff).cfc_read()
    s.latch(slot, 0x10).cfc_write(base).latch(slot, 0x14).cfc_write(0)
    s.latch(slot, 0x18).cfc_write(0xffffffff).cfc_read()     # absent BAR
    s.latch(slot, 0x30).cfc_write(0xfffff800).cfc_read()     # no ROM
    s.latch(slot, 4).cfc_write(6, 4, 2)
s.bar_r(RNG, COMMON + 0x12, 2).bar_r(CON, COMMON + 0x12, 2)
s.ecam_w(RNG_SLOT, 0x10, 0xd0000000).bar_r(RNG, 0x12, 2)          # moved, decoded
s.ecam_w(RNG_SLOT, 0x10, CON_BAR).bar_r(RNG, 0x12, 2)             # onto the console
s.ecam_w(RNG_SLOT, 0x10, 0xdfffc000).bar_r(RNG, 0x12, 2)          # past the window end
s.ecam_w(RNG_SLOT, 0x14, 1).bar_r(RNG, 0x12, 2)                   # above 4 GiB
s.ecam_w(RNG_SLOT, 0x14, 0).ecam_w(RNG_SLOT, 0x10, RNG_BAR)
s.ecam_w(CON_SLOT, 0x10, 0xffff8000, 2)                           # half a register
s.window_w(0x10000, 1).window_w(0x1fffffff, 1, 1)
s.save("bars")

# virtio-rng: a driver, one request, a notify
s = Seq()
s.ram(0x0000, desc(0, 0x8000, 64, WRITE) + desc(1, 0x10000, 16, WRITE))
s.ram(0x1000, avail([0, 1]))
s.start(RNG, 0x03, 4, 0x0000)
s.bar_w(RNG, NOTIFY, 0, 2)
s.bar_r(RNG, 0x1000, 1)                       # ISR
s.bar_r(RNG, COMMON + 0x14, 1)
s.bar_w(RNG, COMMON + 0x14, 0, 1)             # reset
s.save("rng")

# virtio-console: rx buffers, input, a transmit chain, emergency write, resize
s = Seq()
s.ram(0x0000, desc(0, 0x8000, 32, WRITE) + desc(1, 0x8100, 32, WRITE))
s.ram(0x1000, avail([0, 1]))
s.ram(0x3000, desc(0, 0x9000, 5, NEXT, 1) + desc(1, 0x9010, 3))
s.ram(0x4000, avail([0]))
s.ram(0x9000, b"hello").ram(0x9010, b"!!\n")
s.start(CON, 0x03, 3, 0x0000)
s.console_input(b"abcdef")
s.bar_w(CON, NOTIFY + 4, 1, 2)
s.bar_r(CON, 0x2000, 4).bar_w(CON, 0x2008, ord("x"), 1)
s.resize(132, 43)
s.bar_r(CON, COMMON + 0x15, 1)
s.save("console")

# MSI-X: enable, program entries, mask and unmask, signal, read the PBA
s = Seq()
s.start(CON, 0x43, 3, 0x0000)
s.msix_ctrl(CON, 0xc000)                      # enable + mask all
s.msix_entry(CON, 0, 0x41, 0).msix_entry(CON, 1, 0x42, 0).msix_entry(CON, 2, 0x43, 1)
s.msix_signal(CON, 1).bar_r(CON, 0x6000, 8).bar_r(CON, 0x6000, 4)
s.msix_ctrl(CON, 0x8000)                      # unmask: pending goes out
s.bar_r(CON, 0x4000, 8).bar_r(CON, 0x400c, 4).bar_w(CON, 0x4010, 0xfee01000, 4)
s.bar_w(CON, 0x401c, 1, 4).msix_signal(CON, 1).bar_w(CON, 0x401c, 0, 4)
s.bar_w(CON, 0x4008, 0x1234567800000055, 8).bar_w(CON, 0x4003, 0, 1)
s.console_input(b"xyz")
s.msix_ctrl(CON, 0)
s.save("msix")

# INTx: no MSI-X, input raises INTA, the ISR read drops it, INTx disable
s = Seq()
s.ram(0x0000, desc(0, 0x8000, 32, WRITE))
s.ram(0x1000, avail([0]))
s.start(CON, 0x01, 2, 0x0000)
s.console_input(b"abc")
s.ecam_r(CON_SLOT, 6, 2)
s.host_w(CON, 4, 0x0406, 2).host_w(CON, 4, 0x0006, 2)
s.bar_r(CON, 0x1000, 1)
s.save("intx")

# the VIRTIO_PCI_CAP_PCI_CFG window: common config by config cycles
s = Seq()
s.pcicfg(RNG, 0x12, 2).pcicfg(RNG, 0x14, 1, True, 1).pcicfg(RNG, 0x14, 1)
s.pcicfg(RNG, 0x00, 4).pcicfg(RNG, 0x1000, 1).pcicfg(RNG, 0x3000, 2, True, 0)
s.pcicfg(RNG, 0x4000, 4, True, 0xfee00000).pcicfg(RNG, 0x7ffc, 4).pcicfg(RNG, 0x7fff, 2)
s.pcicfg(CON, 0x2000, 4).pcicfg(CON, 0x14, 8, True, 0)
s.host_r(RNG, 0x74 + 16, 4).host_w(RNG, 0x74 + 4, 1, 1).host_r(RNG, 0x74 + 16, 1)
s.save("pcicfg")

# command register games: memory off under a running device, INTx off, status w1c
s = Seq()
s.start(RNG, 0x00, 8, 0x2000)
s.host_w(RNG, 4, 0, 2).bar_r(RNG, 0x14, 1).host_w(RNG, 4, 2, 2)
s.host_w(RNG, 4, 0xffff, 2).host_r(RNG, 4, 2).host_w(RNG, 6, 0xffff, 2).host_r(RNG, 6, 2)
s.host_w(RNG, 0x3c, 0xb, 1).host_r(RNG, 0x3c, 4).host_r(RNG, 0xfc, 4, True)
s.bar_w(RNG, NOTIFY, 0, 2)
s.save("command")
print("wrote corpus to %s" % out)
