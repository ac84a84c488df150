#!/usr/bin/env python3
"""Seed corpus for fuzz_snapshot: valid snapshot state files (the format
of include/sparkler/snapshot.h and docs/snapshots.md) with a header, a
memory section, device sections of several shapes and the end section.
Writes fuzz/corpus/snapshot/."""
import os
import struct
import zlib

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "snapshot")
os.makedirs(out, exist_ok=True)
U8, U16, U32, U64, BYTES, STR = 1, 2, 3, 4, 5, 6
HEADER, VM, VCPU, MEMORY, DEVICE, END = 1, 2, 3, 4, 5, 0x7fff


def field(name, t, v):
    b = bytes([len(name)]) + name.encode() + bytes([t])
    if t in (U8, U16, U32, U64):
        return b + v.to_bytes({U8: 1, U16: 2, U32: 4, U64: 8}[t], "little")
    data = v.encode() if isinstance(v, str) else v
    return b + struct.pack("<I", len(data)) + data


def section(t, payload):
    h = struct.pack("<IIQ", t, 0, len(payload))
    crc = zlib.crc32(payload, zlib.crc32(h))
    return h + struct.pack("<II", crc, 0) + payload


def header(cpuid=b"", caps=b""):
    return section(HEADER, field("sparkler_version", STR, "0.1.0") +
                   field("cpu_vendor", STR, "GenuineIntel") + field("cpu_family", U32, 6) +
                   field("cpu_model", U32, 85) + field("cpu_stepping", U32, 7) +
                   field("host_kernel", STR, "6.1.0-28-amd64") + field("created", U64, 1765000000) +
                   field("cpuid", BYTES, cpuid) + field("kvm_caps", BYTES, caps))


def device(kind, name, version, *fields):
    return section(DEVICE, field("kind", STR, kind) + field("name", STR, name) +
                   field("version", U32, version) + b"".join(fields))


def memory(regions, diff=False):
    p = field("file", STR, "mem") + field("file_size", U64, sum(r[1] for r in regions))
    p += field("diff", U8, int(diff)) + field("regions", U32, len(regions))
    off = 0
    for i, (gpa, size, typ) in enumerate(regions):
        p += field("r%d.gpa" % i, U64, gpa) + field("r%d.size" % i, U64, size)
        p += field("r%d.offset" % i, U64, off) + field("r%d.type" % i, U8, typ)
        p += field("r%d.name" % i, STR, "ram%d" % i)
        if diff:
            p += field("r%d.dirty" % i, BYTES, b"\x05" + b"\0" * ((size // 4096 // 64 + 1) * 8 - 1))
        off += size
    return section(MEMORY, p)


def snapfile(*sections):
    body = b"SPKSNAP\n" + struct.pack("<II", 1, 0) + b"".join(sections)
    return body + section(END, field("sections", U32, len(sections)))


cpuid = b"".join(struct.pack("<6I", f, 0, 0xd, 0x756e6547, 0x6c65746e, 0x49656e69) for f in (0, 1, 7))
files = {
    "header": snapfile(header()),
    "cpuid": snapfile(header(cpuid, struct.pack("<II", 1, 1))),
    "memory": snapfile(header(), memory([(0, 0x100000, 0), (0x100000, 0x4000, 1)])),
    "diff": snapfile(header(), memory([(0, 0x40000, 0)], diff=True)),
    "uart": snapfile(header(), device("uart8250", "com1", 1, field("ier", U8, 3), field("lcr", U8, 3),
                                      field("rx", BYTES, b"hello"), field("name", STR, "com1"))),
    "devices": snapfile(header(), memory([(0, 0x10000, 0)]),
                        device("rtc", "rtc", 1, field("index", U8, 0x0b), field("cmos", BYTES, bytes(128))),
                        device("i8042", "i8042", 1, field("queue", BYTES, b"\xfa\xaa"),
                               field("cmd", U8, 0x60), field("v", U64, 1 << 40),
                               field("w", U16, 0xffff))),
}
for name, data in files.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
