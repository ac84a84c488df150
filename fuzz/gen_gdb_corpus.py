#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Write the seed corpus of fuzz_gdb into fuzz/corpus/gdb/.

Byte streams as a debugger sends them: what gdb 13 says when it attaches,
reads registers and memory, sets breakpoints and watchpoints, steps and
continues; Ctrl-C, acks and no-ack mode; and the bad input the stub must
survive (checksums, overlong packets, malformed commands). One seed is also
shaped for the page walker (the first 48 bytes are CR0, CR3, CR4, EFER and
two addresses; the rest holds 4-level page tables).

    python3 fuzz/gen_gdb_corpus.py
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "gdb")


def pkt(payload):
    if isinstance(payload, str):
        payload = payload.encode("latin-1")
    return b"$" + payload + b"#%02x" % (sum(payload) & 0xFF)


def stream(*payloads, acks=True):
    out = b""
    for p in payloads:
        out += p if isinstance(p, bytes) and not p.startswith(b"$") and len(p) <= 2 else pkt(p)
        if acks:
            out += b"+"
    return out


SEEDS = {
    "attach": stream("qSupported:multiprocess+;swbreak+;hwbreak+;qRelocInsn+;fork-events+;"
                     "vfork-events+;exec-events+;vContSupported+;QThreadEvents+;no-resumed+;"
                     "memory-tagging+", "vMustReplyEmpty", "QStartNoAckMode", "Hgp0.0",
                     "qXfer:features:read:target.xml:0,ffb", "qTStatus", "?", "qfThreadInfo",
                     "qsThreadInfo", "qAttached:1", "Hc-1", "qC", "qOffsets", "g", "qSymbol::"),
    "registers": stream("g", "p10", "p12", "p1f", "p3a", "P3=efbeadde00000000",
                        "P11=46020000", "P12=08000000", "G" + "00" * 8 * 16 + "xx" * 20),
    "memory": stream("m100000,40", "m0,1", "mffffffffffffffff,10", "M100000,4:2a000000",
                     b"X100000,4:" + bytes([0x7D, 0x03, 0x7D, 0x04, 0x7D, 0x5D, 0x00]),
                     "X100000,0:", "m100000,100000"),
    "points": stream("Z0,101feb,1", "Z1,102015,1", "Z2,123020,4", "Z3,123020,8",
                     "Z4,123021,3", "z0,101feb,1", "z1,102015,1", "z2,123020,4",
                     "Z0,101feb,1;X2,0a00"),
    "resume": stream("vCont?", "vCont;c", "vCont;s:1;c", "vCont;r101feb,101ff4:1;c",
                     "vCont;C02:p1.2;S05", "c", "s", "C05;100000", "S05", "c101000"),
    "threads": stream("Hg2", "Hgp1.2", "Hc-1", "T1", "T2", "qThreadExtraInfo,2",
                      "qfThreadInfo", "qsThreadInfo"),
    "end": stream("D", "D;1", "k", "vKill;1"),
    "interrupt": b"+" + pkt("vCont;c") + b"\x03\x03" + pkt("?") + b"-",
    "noise": b"\r\n+++---\x00\xff$$$###" + pkt("qC") + b"$g#00$g#zz$#00",
    "overlong": b"$" + b"m" * 16500 + b"#00" + pkt("qC"),
    "malformed": stream("m", "mzz,1", "m1,", "m10000000000000000,1", "M1,2:abc", "Z9,0,0",
                        "Hgzz", "vCont;x", "vCont;s:", "p", "P10=00", "G0", "vCont" + ";c" * 17,
                        "qXfer:features:read:" + "a" * 100 + ":0,1", "T-1", "Hg-1", "X1,2:}"),
}


def walk_seed():
    """cr0 (PG), cr3, cr4 (PAE), efer (LMA), two addresses, then tables."""
    head = struct.pack("<6Q", 1 << 31, 0x1000, 1 << 5, 1 << 10, 0x201123, 0x40000010)
    mem = bytearray(0x6000)
    mem[: len(head)] = head
    struct.pack_into("<Q", mem, 0x1000, 0x2000 | 1)  # PML4[0]
    struct.pack_into("<Q", mem, 0x2000, 0x3000 | 1)  # PDPT[0]
    struct.pack_into("<Q", mem, 0x2008, 0x40000000 | 0x81)  # PDPT[1]: 1 GiB
    struct.pack_into("<Q", mem, 0x3008, 0x4000 | 1)  # PD[1]
    struct.pack_into("<Q", mem, 0x4008, 0x5000 | 1)  # PT[1]
    return bytes(mem)


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    with open(os.path.join(OUT, "walk"), "wb") as f:
        f.write(walk_seed())
    print("wrote %d seeds to %s" % (len(SEEDS) + 1, OUT))


if __name__ == "__main__":
    main()
