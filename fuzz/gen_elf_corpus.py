#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Write the seed corpus of fuzz_elf into fuzz/corpus/elf/ (no .elf suffix:
.gitignore ignores *.elf).

Small hand-built ELF64 images, valid and broken one field at a time, laid
out for the fuzzer's guest (2 MiB RAM at 0, 64 KiB read-only after it).
With --gcc, also link a tiny freestanding program with the host gcc, so
the corpus has one image shaped by a real linker.

    python3 fuzz/gen_elf_corpus.py [--gcc]
"""
import os
import shutil
import struct
import subprocess
import sys
import tempfile

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "elf")

EHDR = struct.Struct("<16sHHIQQQIHHHHHH")  # Elf64_Ehdr, 64 bytes
PHDR = struct.Struct("<IIQQQQQQ")  # Elf64_Phdr, 56 bytes
PT_LOAD, PT_NOTE, PT_GNU_STACK = 1, 4, 0x6474E551
RAM = 2 << 20


def ident(cls=2, data=1, version=1, magic=b"\x7fELF"):
    return magic + bytes([cls, data, version]) + bytes(9)


def phdr(paddr, offset, filesz, memsz, ptype=PT_LOAD):
    return PHDR.pack(ptype, 7, offset, paddr, paddr, filesz, memsz, 0x1000)


def image(segs, entry=0x1000, phnum=None, **eh):
    """segs: (paddr, payload, memsz[, ptype]); payloads follow the table."""
    phoff = EHDR.size
    off = phoff + PHDR.size * len(segs)
    table, body = b"", b""
    for s in segs:
        paddr, payload, memsz = s[:3]
        ptype = s[3] if len(s) > 3 else PT_LOAD
        table += phdr(paddr, off + len(body), len(payload), memsz, ptype)
        body += payload
    fields = dict(ident=ident(), type=2, machine=62, version=1, entry=entry,
                  phoff=phoff, shoff=0, flags=0, ehsize=EHDR.size,
                  phentsize=PHDR.size, phnum=len(segs) if phnum is None else phnum,
                  shentsize=64, shnum=0, shstrndx=0)
    fields.update(eh)
    return EHDR.pack(*fields.values()) + table + body


TEXT = bytes(range(1, 129))
DATA = b"sparkler" * 8
TWO = [(0x1000, TEXT, len(TEXT)), (0x3000, DATA, 0x1000)]


def seeds():
    yield "valid_two_segments", image(TWO)
    yield "valid_with_note", image(TWO + [(0, b"note", 0, PT_NOTE), (0, b"", 0, PT_GNU_STACK)])
    yield "valid_bss_only", image([(0x10000, b"", 0x8000)])
    yield "valid_spans_rom", image([(RAM - 0x40, TEXT, 0x200)], entry=RAM - 0x40)
    yield "bad_magic", image(TWO, ident=ident(magic=b"\x7fELG"))
    yield "bad_class32", image(TWO, ident=ident(cls=1))
    yield "bad_machine", image(TWO, machine=3)
    yield "bad_entry0", image(TWO, entry=0)
    yield "bad_phnum65", image(TWO, phnum=65)
    yield "bad_phoff_wrap", image(TWO, phoff=(1 << 64) - 8)
    yield "bad_overlap", image([(0x1000, TEXT, 0x200), (0x1100, DATA, len(DATA))])
    yield "bad_outside_ram", image([(RAM + (64 << 10) - 0x10, TEXT, len(TEXT))])
    yield "bad_filesz_gt_memsz", image([(0x1000, TEXT, 4)])
    yield "bad_truncated", image(TWO)[:40]


# Freestanding, static, linked at 1 MiB so it lands in the fuzzer's RAM.
PROG = r"""
void _start(void)
{
	static volatile unsigned long counter;
	for (;;)
		counter++;
}
"""


def gcc_seed():
    tmp = tempfile.mkdtemp()
    try:
        src, out = os.path.join(tmp, "p.c"), os.path.join(tmp, "p.elf")
        with open(src, "w") as f:
            f.write(PROG)
        subprocess.run(["gcc", "-Os", "-static", "-nostdlib", "-ffreestanding", "-fno-pie",
                        "-no-pie", "-fno-asynchronous-unwind-tables", "-Wl,--build-id=none",
                        "-Wl,-Ttext-segment=0x100000", "-Wl,-z,max-page-size=0x1000",
                        "-Wl,-z,noexecstack", "-o", out, src], check=True)
        subprocess.run(["strip", out], check=True)
        with open(out, "rb") as f:
            return f.read()
    finally:
        shutil.rmtree(tmp)


def main():
    os.makedirs(OUT, exist_ok=True)
    all_seeds = list(seeds())
    if "--gcc" in sys.argv[1:]:
        all_seeds.append(("gcc_freestanding", gcc_seed()))
    for name, blob in all_seeds:
        assert len(blob) < 16 << 10, name
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(blob)
    print("wrote %d seeds to %s" % (len(all_seeds), OUT))


if __name__ == "__main__":
    main()
