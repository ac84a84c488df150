#!/usr/bin/env python3
"""Seed corpus for fuzz_devices: what Linux's drivers do with the legacy
PC devices (the 8250 probe and transmit loop, CMOS time reads and sets,
the i8042 probe and keyboard commands, ACPI GPE0 power button, S5 and reset),
with host input, Ctrl+Alt+Del, the power button and clock jumps in
between. Writes fuzz/corpus/devices/. The input format is in
fuzz/fuzz_devices.c."""
import os
import struct

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "devices")
os.makedirs(out, exist_ok=True)

UART, RTC, I8042, PM = 0, 1, 2, 3
W = {1: 0, 2: 1, 4: 2, 8: 3}


class Seq:
    def __init__(self, dev, hdr=b""):
        self.b = bytearray(bytes([dev]) + hdr.ljust(7, b"\0"))

    def rd(self, port, width=1):
        self.b.append(0 | W[width] << 2 | port << 4)
        return self

    def wr(self, port, value, width=1):
        self.b.append(1 | W[width] << 2 | port << 4)
        self.b += value.to_bytes(8, "little")[:width]
        return self

    def host(self, *args):
        self.b.append(2)
        self.b += bytes(args)
        return self

    def save(self, name):
        with open(os.path.join(out, name), "wb") as f:
            f.write(bytes(self.b))


# ---- UART (port = register 0-7, 8-9 past the end)
RBR, IER, IIR, LCR, MCR, LSR, MSR, SCR = range(8)
s = Seq(UART)
s.wr(LCR, 0).wr(IER, 0).rd(IER)                      # autoconfig: IER probe
s.wr(IER, 0x0f).rd(IER).wr(IER, 0)
s.wr(MCR, 0x1a).rd(MSR).wr(MCR, 0x00)                # loopback test
s.wr(IIR, 0x01).rd(IIR).wr(LCR, 0xbf).rd(IIR).wr(LCR, 0)
s.wr(IIR, 0xe7).rd(IIR)                              # FIFO enable, 16750 bit
s.wr(LCR, 0x80).wr(RBR, 1).wr(IER, 0).wr(LCR, 0x03)  # divisor, 8N1
s.wr(SCR, 0xa5).rd(SCR).save("uart_probe")

s = Seq(UART)
s.wr(LCR, 0x03).wr(IIR, 0xc7).wr(MCR, 0x0b).wr(IER, 0x05)
s.host(5, *b"hello").rd(IIR).rd(LSR).rd(RBR).rd(RBR, 4).rd(IIR)
s.wr(IER, 0x07).rd(IIR).wr(RBR, ord("a")).rd(IIR).wr(RBR, 0x0a0d, 2)
s.host(20, *b"0123456789abcdefghij").rd(LSR).rd(RBR, 8).rd(RBR, 8).rd(LSR)
s.rd(MSR).rd(8).wr(9, 0xff).rd(7, 4).wr(6, 0x1234, 2).save("uart_rx_tx")

s = Seq(UART)                                        # size_fifo in loopback
s.wr(LCR, 0).wr(IIR, 0x07).wr(MCR, 0x10).wr(LCR, 0x80).wr(RBR, 1).wr(LCR, 0x03)
for i in range(20):
    s.wr(RBR, i)
s.rd(LSR).rd(RBR).rd(RBR, 2).rd(LSR).wr(MCR, 0x1f).rd(MSR).wr(MCR, 0x0b).rd(MSR)
s.wr(IER, 0x0a).rd(IIR).wr(IIR, 0x00).host(3, 1, 2, 3).host(3, 4, 5, 6).rd(LSR)
s.save("uart_loopback")

s = Seq(UART)
s.wr(RBR, 0x4847464544434241, 8).wr(MCR, 0x08).wr(IER, 0x02).rd(IIR).rd(IIR)
s.wr(IER, 0x00).wr(IER, 0x02, 1).wr(2, 0x0201, 2).rd(0, 8).save("uart_wide")

# ---- RTC (port 0 index, 1 data, 2 past the end)


def cmos_rd(s, idx):
    return s.wr(0, idx).rd(1)


def cmos_wr(s, idx, v):
    return s.wr(0, idx).wr(1, v)


s = Seq(RTC)
for idx in (0x0a, 0x00, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x32, 0x0b, 0x0c, 0x0d):
    cmos_rd(s, idx)
s.host(1).host(60)
cmos_rd(s, 0x00)
cmos_rd(s, 0x0c)
s.save("rtc_read")

s = Seq(RTC)                                         # hwclock --systohc
cmos_wr(s, 0x0b, 0x82)
for idx, v in ((0x00, 0x30), (0x02, 0x15), (0x04, 0x09), (0x07, 0x29), (0x08, 0x02),
               (0x09, 0x28), (0x32, 0x20)):
    cmos_wr(s, idx, v)
cmos_wr(s, 0x0b, 0x02)
cmos_rd(s, 0x07)
cmos_wr(s, 0x0b, 0x06)                               # binary
cmos_wr(s, 0x04, 23)
cmos_wr(s, 0x0b, 0x04)                               # 12-hour binary
cmos_rd(s, 0x04)
cmos_wr(s, 0x04, 0x8c)
cmos_wr(s, 0x0b, 0x82)
cmos_wr(s, 0x07, 0x31)                               # 31 February: refused
cmos_wr(s, 0x0b, 0x02)
s.save("rtc_set")

s = Seq(RTC)                                         # alarms and register C
cmos_wr(s, 0x01, 0xff)
cmos_wr(s, 0x03, 0xff)
cmos_wr(s, 0x05, 0xff)
cmos_wr(s, 0x0b, 0x72)
cmos_rd(s, 0x0c)
s.host(1)
cmos_rd(s, 0x0c)
s.wr(0, 0x0c0b, 2).rd(0, 2).rd(1, 8).wr(1, 0xffffffff, 4).save("rtc_alarm")

s = Seq(RTC, bytes([0, 0, 0, 0, 0x83]))              # a wild host clock (INT64_MAX)
for idx in (0x00, 0x09, 0x32):
    cmos_rd(s, idx)
cmos_wr(s, 0x0b, 0x82)
cmos_wr(s, 0x09, 0x99)
cmos_wr(s, 0x32, 0x99)
cmos_wr(s, 0x0b, 0x02)
s.host(0x82).host(0x84).host(255)
cmos_rd(s, 0x09)
s.save("rtc_wild")

# ---- i8042 (port: bit 3 of the port nibble picks 0x64, bits 0-1 the offset)
DATA, CMD = 0, 8


def ctl(s, cmd, param=None):
    s.wr(CMD, cmd)
    if param is not None:
        s.wr(DATA, param)
    return s


s = Seq(I8042)                                       # i8042_controller_check/selftest/init
s.rd(CMD)
ctl(s, 0xaa).rd(CMD).rd(DATA)
ctl(s, 0x20).rd(DATA)
ctl(s, 0x60, 0x47)
ctl(s, 0xa9).rd(DATA)
ctl(s, 0xd3, 0x5a).rd(CMD)
ctl(s, 0xd4, 0xf2).rd(CMD)
ctl(s, 0xab).rd(DATA)
ctl(s, 0xad)
ctl(s, 0xae)
ctl(s, 0xd0).rd(DATA)
ctl(s, 0xd1, 0xdf)
ctl(s, 0xc0).rd(DATA)
s.save("i8042_probe")

s = Seq(I8042)                                       # atkbd
s.wr(DATA, 0xf2).rd(DATA).rd(DATA).rd(DATA)
s.wr(DATA, 0xed).rd(DATA).wr(DATA, 0x07).rd(DATA)
s.wr(DATA, 0xf0).rd(DATA).wr(DATA, 0x00).rd(DATA).rd(DATA)
s.wr(DATA, 0xf3).wr(DATA, 0x00).wr(DATA, 0xff).wr(DATA, 0xee).wr(DATA, 0x42)
for _ in range(8):
    s.rd(DATA)
s.host().rd(DATA).rd(DATA, 8).rd(DATA, 8).host().host()
ctl(s, 0xd2, 0x1c).rd(DATA)
ctl(s, 0x60, 0x00).host().rd(CMD)
s.save("i8042_kbd")

s = Seq(I8042)
s.wr(CMD, 0xfe).wr(CMD, 0xff).wr(CMD, 0xf0).wr(DATA | 1, 0xfe).wr(DATA, 0xfe00000000, 8)
s.wr(DATA, 0x1, 4).rd(DATA, 8).rd(CMD | 2, 2).save("i8042_reset")

# ---- ACPI PM (port: bits 2-3 pick event, control, reset, GPE0; bits 0-1 the offset)
EVT, CNT, RST, GPE = 0, 4, 8, 12
hdr = bytes([5, 6])
s = Seq(PM, hdr)
s.rd(EVT, 2).rd(EVT | 2, 2).rd(CNT, 2).rd(GPE, 4)
# ACPICA: GPE0 enables cleared byte by byte, GPE 0 enabled, a press, _E00's clear
s.wr(GPE | 2, 0).wr(GPE | 3, 0).wr(GPE | 2, 1).host().rd(GPE).wr(GPE, 1).rd(GPE)
s.host().wr(GPE | 2, 0, 2).wr(GPE | 2, 0xffff, 2).wr(GPE, 0xffff, 2)
s.wr(EVT | 2, 0x0100, 2).host().rd(EVT, 2).wr(EVT, 0x0100, 2).rd(EVT, 2)
s.wr(CNT, 0x0c00 | 0x2000, 2).rd(EVT, 2)             # S3: not supported, WAK
s.wr(CNT, 0x1401, 2).wr(CNT | 1, 0x34, 1)            # S5 through the high byte
s.save("pm_s5")

s = Seq(PM, hdr)
s.wr(RST, 0x02).wr(RST, 0x06).rd(RST).wr(EVT, 0x0601060100000000, 8).rd(EVT, 8)
s.wr(CNT | 3, 0x12345678, 4).rd(RST | 1, 4).wr(RST | 3, 1).save("pm_reset")

s = Seq(PM, bytes([5, 6, 1, 0, 3, 4, 2]))            # ports that overlap
s.wr(EVT, 0xffffffff, 4).wr(CNT, 0x3414, 2).wr(RST, 0x06).rd(EVT, 8).host()
s.wr(GPE | 2, 0xffff, 2).host().rd(GPE, 4).wr(GPE, 0xffffffff, 4)
s.save("pm_overlap")
print("wrote corpus to %s" % out)
