#!/usr/bin/env python3
"""Seed corpus for fuzz_fn: frames as the guest SDK writes them (results
and host-call arguments of every type, strings with their NUL, empty
bytes, a failed status) and some it would not (offsets past the area, a
length that wraps, a string without its NUL, wrong types). Writes
fuzz/corpus/fn/. The input format is in fuzz/fuzz_fn.c."""
import os
import struct

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fn")
os.makedirs(out, exist_ok=True)
MAGIC = 0x314E4653


def val(t, v=0, n=0):
    return struct.pack("<IIQQ", ord(t) if isinstance(t, str) else t, 0, v & (2 ** 64 - 1), n)


def frame(sig, args, ret, data, status=0, args_end=None, nargs=None):
    args = list(args) + [val(0)] * (8 - len(args))
    f = struct.pack("<IIIiQ", MAGIC, 0, len([a for a in args if a != val(0)]) if nargs is None else nargs,
                    status, len(data) if args_end is None else args_end)
    f += b"\0" * 64 + b"".join(args) + ret
    assert len(f) == 304
    return sig.encode().ljust(16, b"\0") + f + data


seeds = {
    "i64": frame("ii:i", [val("i", 40), val("i", 2)], val("i", 42), b""),
    "f64": frame("d:d", [val("d", struct.unpack("<Q", struct.pack("<d", 1.5))[0])],
                 val("d", struct.unpack("<Q", struct.pack("<d", -3.75))[0]), b""),
    "bytes": frame("b:b", [val("b", 0, 4)], val("b", 8, 4), b"abcd\0\0\0\0dcba"),
    "strings": frame("ss:s", [val("s", 0, 4), val("s", 8, 5)], val("s", 16, 10),
                     b"left\0\0\0\0right\0\0\0left+right\0"),
    "empty": frame("b:b", [val("b", 0, 0)], val("b", 0, 0), b""),
    "mixed": frame("isdb:v", [val("i", 7), val("s", 0, 2), val("d", 0), val("b", 8, 3)],
                   val("v"), b"hi\0\0\0\0\0\0xyz"),
    "failed": frame("i:i", [val("i", 1)], val("i", -5 & (2 ** 64 - 1)), b"", status=2),
    "past_area": frame("b:b", [val("b", 1 << 40, 4)], val("b", 1 << 40, 4), b"abcd"),
    "wraps": frame("b:b", [val("b", 2, 2 ** 64 - 1)], val("b", 2, 2 ** 64 - 1), b"abcd"),
    "no_nul": frame("s:s", [val("s", 0, 4)], val("s", 0, 4), b"abcd"),
    "wrong_type": frame("i:s", [val("s", 0, 1)], val("i", 1), b"a\0"),
    "args_end": frame("b:b", [val("b", 0, 1)], val("b", 0, 1), b"a", args_end=1 << 33),
    "nargs": frame("i:i", [val("i", 1)], val("i", 1), b"", nargs=99),
}
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
