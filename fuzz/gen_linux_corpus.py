#!/usr/bin/env python3
"""Seed corpus for fuzz_linux: a small synthetic bzImage (good and with
broken fields) and an ELF kernel with a PVH note. Writes fuzz/corpus/linux/."""
import os
import struct

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "linux")
os.makedirs(out, exist_ok=True)


def bzimage(version=0x20F, xload=0x7F, reloc=1, init_size=0x400000, payload=2048):
    setup = 5 * 512
    k = bytearray(setup + payload)
    k[0x1F1] = 4
    struct.pack_into("<H", k, 0x1FE, 0xAA55)
    k[0x200], k[0x201] = 0xEB, 0x6A
    k[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", k, 0x206, version)
    k[0x211] = 1
    struct.pack_into("<I", k, 0x22C, 0x7FFFFFFF)
    struct.pack_into("<I", k, 0x230, 0x200000)
    k[0x234] = reloc
    struct.pack_into("<H", k, 0x236, xload)
    struct.pack_into("<I", k, 0x238, 2047)
    struct.pack_into("<Q", k, 0x258, 0x1000000)
    struct.pack_into("<I", k, 0x260, init_size)
    return bytes(k)


def elf_pvh():
    eh = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01" + bytes(9), 2, 62, 1,
                     0x1000000, 64, 0, 0, 64, 56, 2, 0, 0, 0)
    load = struct.pack("<IIQQQQQQ", 1, 7, 0x1000, 0xFFFFFFFF81000000, 0x1000000, 0x100, 0x1000, 0x1000)
    note_desc = struct.pack("<Q", 0x1000040)
    note = struct.pack("<III", 4, 8, 18) + b"Xen\0" + note_desc
    notep = struct.pack("<IIQQQQQQ", 4, 4, 0x200, 0, 0, len(note), len(note), 4)
    img = bytearray(0x1100)
    img[0:64] = eh
    img[64:120] = load
    img[120:176] = notep
    img[0x200:0x200 + len(note)] = note
    return bytes(img)


seeds = {
    "bzimage_good": bzimage(),
    "bzimage_old": bzimage(version=0x205),
    "bzimage_no64": bzimage(xload=0),
    "bzimage_not_reloc": bzimage(reloc=0),
    "bzimage_huge_init": bzimage(init_size=0xF0000000),
    "elf_pvh": elf_pvh(),
}
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
