#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Write the seed corpus of fuzz_mmds into fuzz/corpus/mmds/.

Records as fuzz_mmds.c reads them ([op][len lo][len hi][bytes]): an ARP
request for 169.254.169.254, TCP handshakes and GETs (V1 and V2 token
flows) as checksummed segments, and raw HTTP requests.

    python3 fuzz/gen_mmds_corpus.py
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "mmds")
FIN, SYN, RST, PSH, ACK = 1, 2, 4, 8, 16


def rec(op, data):
    return bytes([op]) + struct.pack("<H", len(data)) + data


def arp():
    f = b"\xff" * 6 + bytes([2, 0, 0, 0, 0, 1]) + b"\x08\x06"
    f += struct.pack(">HHBBH", 1, 0x0800, 6, 4, 1) + bytes([2, 0, 0, 0, 0, 1])
    f += bytes([10, 0, 0, 2]) + b"\0" * 6 + bytes([169, 254, 169, 254])
    return rec(0, f)


def seg(seq, ack, flags, data=b"", opts=b"", port=0, ack_last=True):
    # source port and checksum are filled in by the target, and the ACK
    # field from the stack's last segment (0x10)
    hdr = struct.pack(">HHIIBBHHH", 0, 80, seq, ack, (5 + len(opts) // 4) << 4, flags, 64240, 0, 0)
    return rec(1 | (port << 2) | (0x10 if ack_last and flags & ACK else 0), hdr + opts + data)


def drain(room=90):
    return rec(2, bytes([room]))


def timeout(ms8=255, room=90):
    # the test clock moves on by 8 * ms8 ms, the retransmission timers run, then a drain
    return rec(2 | 4, bytes([room, ms8]))


def unacked(request):
    # a request whose answer is never acknowledged: sent again at each
    # timeout until the connection is dropped
    out = seg(100, 0, SYN, opts=b"\x02\x04\x05\xb4") + drain()
    out += seg(101, 1, ACK | PSH, request) + drain()
    return out + timeout(31) + timeout(62) + timeout(125) + timeout() * 10


def conversation(requests, port=0):
    out = seg(100, 0, SYN, opts=b"\x02\x04\x05\xb4", port=port) + drain()
    seq = 101
    for r in requests:
        out += seg(seq, 1, ACK | PSH, r, port=port) + drain()
        seq += len(r)
    out += seg(seq, 1, ACK | FIN, port=port) + drain()
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    seeds = {
        "arp": arp() + drain(),
        "get_v1": conversation([b"GET /latest/meta-data/ami-id HTTP/1.1\r\nHost: x\r\n\r\n"]),
        "get_json": conversation([b"GET /latest HTTP/1.1\r\nAccept: application/json\r\n\r\n"]),
        "token_v2": conversation([
            b"PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 60\r\n\r\n",
            b"GET / HTTP/1.1\r\nX-metadata-token: 00112233445566778899aabbccddeeff0011223344556677\r\n\r\n"]),
        "two_ports": conversation([b"GET / HTTP/1.0\r\n\r\n"], 1) + conversation([b"GET /l/0 HTTP/1.1\r\n\r\n"], 2),
        "http_raw": rec(3, b"GET /latest/meta-data/ HTTP/1.1\r\nConnection: close\r\n\r\n"),
        "http_put": rec(3, b"PUT /latest/api/token HTTP/1.1\r\nContent-Length: 3\r\n"
                        b"X-aws-ec2-metadata-token-ttl-seconds: 5\r\n\r\nabc"),
        "rst": seg(5, 0, RST) + seg(5, 9, ACK) + drain(),
        "unacked": unacked(b"GET /latest/meta-data/ami-id HTTP/1.1\r\n\r\n"),
    }
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
