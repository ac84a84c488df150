#!/usr/bin/env python3
"""Seed inputs for fuzz_assist (layout in fuzz/fuzz_assist.c): each listed
instruction with operands that complete, fault on a missing page, and hit
guest RAM's edge. usage: gen_assist_corpus.py OUT_DIR"""
import os
import struct
import sys

INSNS = {
    "int3": b"\xcc", "fwait": b"\x9b", "clac": b"\x0f\x01\xca", "stac": b"\x0f\x01\xcb",
    "popcnt64": b"\xf3\x48\x0f\xb8\xc7", "popcnt32": b"\xf3\x0f\xb8\xc7",
    "popcnt_r9": b"\xf3\x4d\x0f\xb8\xd1",
    "ldmxcsr_rsp": b"\x0f\xae\x54\x24\x04", "stmxcsr_rsp": b"\x0f\xae\x1c\x24",
    "ldmxcsr_sib": b"\x0f\xae\x54\x81\x0c", "ldmxcsr_rip": b"\x0f\xae\x15\x10\x00\x00\x00",
    "stmxcsr_r11": b"\x41\x0f\xae\x5b\x04", "ldmxcsr_gs": b"\x65\x0f\xae\x14\x25\x00\x10\x00\x00",
}


def seed(insn, flags=0x80, mode=0, rsp=0x8000, rip=0x1000):
    gprs = [0] * 16
    gprs[1] = 0x2000   # rcx
    gprs[4] = rsp      # rsp
    gprs[7] = 0x1234   # rdi
    gprs[11] = 0xfffe  # r11: its page's end
    b = bytes([flags, len(insn)]) + insn.ljust(15, b"\x90")
    b += struct.pack("<QQ", rip, 0x2) + struct.pack("<16Q", *gprs)
    b += struct.pack("<QQ", 0, 0x3000) + bytes([mode]) + struct.pack("<QQ", 0, 0x1f80)
    return b + b"\x80\x1f\x00\x00" * 16


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, insn in INSNS.items():
        open(os.path.join(out, name), "wb").write(seed(insn))
        open(os.path.join(out, name + "-nopage"), "wb").write(seed(insn, mode=2))
        open(os.path.join(out, name + "-cpl3"), "wb").write(seed(insn, flags=0x81, mode=3))


if __name__ == "__main__":
    main()
