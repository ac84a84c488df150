/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The GDB remote serial protocol, the pure part: framing bytes into
 * packets, hex and binary encodings, and parsing a packet into a command.
 * No I/O, no VM, no allocation: every input is untrusted (a debugger on a
 * socket), so every length is checked here. The stub (gdb.c) executes
 * what comes out; fuzz/fuzz_gdb.c feeds this module arbitrary bytes.
 */
#ifndef SPK_VMM_GDB_PROTO_H
#define SPK_VMM_GDB_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest packet payload we accept and announce (qSupported PacketSize). */
#define GDB_PACKET_MAX 16384

/* ---- framing --------------------------------------------------------- */

enum gdb_rx_event {
	GDB_RX_NONE = 0,     /* byte taken, nothing complete yet */
	GDB_RX_ACK,          /* '+' outside a packet */
	GDB_RX_NAK,          /* '-' outside a packet: resend the last reply */
	GDB_RX_INTERRUPT,    /* 0x03 outside a packet: Ctrl-C */
	GDB_RX_PACKET,       /* a packet with a good checksum: rx->buf, rx->len */
	GDB_RX_BAD_CHECKSUM, /* a packet whose checksum does not match: answer '-' */
	GDB_RX_TOO_LONG,     /* a packet longer than GDB_PACKET_MAX (dropped) */
};

struct gdb_rx {
	int state;
	uint8_t sum;    /* running checksum of the payload */
	uint8_t theirs; /* the checksum the packet carries */
	bool overflow;  /* more than GDB_PACKET_MAX bytes: dropped */
	bool bad_digit; /* a checksum character that is not hex */
	size_t len;
	char buf[GDB_PACKET_MAX + 1]; /* the payload, NUL-terminated */
};

void gdb_rx_init(struct gdb_rx *rx);
/* Take one byte from the wire. */
enum gdb_rx_event gdb_rx_byte(struct gdb_rx *rx, uint8_t c);
/* A packet has started and not ended (for a clean report on disconnect). */
bool gdb_rx_mid_packet(const struct gdb_rx *rx);

/*
 * "$payload#xx" into out (cap bytes). The payload goes as it is: escape
 * binary data first (gdb_escape_bin). The length, or 0 if it does not fit.
 */
size_t gdb_frame(char *out, size_t cap, const char *payload, size_t len);

/* ---- encodings -------------------------------------------------------- */

int gdb_hex_val(int c); /* 0..15, or -1 */
/* 2n lowercase hex digits into out (no NUL); returns 2n. */
size_t gdb_hex_encode(char *out, const uint8_t *in, size_t n);
/* nchars hex digits (even) into nchars / 2 bytes; -1 on a bad digit or odd count. */
int gdb_hex_decode(uint8_t *out, const char *in, size_t nchars);
/*
 * Binary data (X packets): '}' escapes the next byte (xor 0x20). Decodes
 * exactly want bytes from in[0, n); -1 if the data is shorter, longer, or
 * ends inside an escape.
 */
int gdb_unescape_bin(uint8_t *out, size_t want, const char *in, size_t n);
/* Escape '#', '$', '}' and '*' for a binary reply; the length written, or 0 if out is too small. */
size_t gdb_escape_bin(char *out, size_t cap, const uint8_t *in, size_t n);

/* ---- commands ---------------------------------------------------------- */

enum gdb_cmd_kind {
	GDB_CMD_UNSUPPORTED = 0, /* answer with an empty packet */
	GDB_CMD_MALFORMED,       /* answer E.. (cmd.why says why) */
	GDB_CMD_QSUPPORTED,
	GDB_CMD_STOP_REASON,    /* ? */
	GDB_CMD_READ_REGS,      /* g */
	GDB_CMD_WRITE_REGS,     /* G hex: data/data_len */
	GDB_CMD_READ_REG,       /* p n */
	GDB_CMD_WRITE_REG,      /* P n=hex */
	GDB_CMD_READ_MEM,       /* m addr,len */
	GDB_CMD_WRITE_MEM,      /* M addr,len:hex */
	GDB_CMD_WRITE_MEM_BIN,  /* X addr,len:binary */
	GDB_CMD_CONTINUE,       /* c [addr] (also C sig[;addr]) */
	GDB_CMD_STEP,           /* s [addr] (also S sig[;addr]) */
	GDB_CMD_VCONT_QUERY,    /* vCont? */
	GDB_CMD_VCONT,          /* vCont;action[:tid]... */
	GDB_CMD_INSERT_BP,      /* Z type,addr,kind */
	GDB_CMD_REMOVE_BP,      /* z type,addr,kind */
	GDB_CMD_SET_THREAD,     /* H op tid */
	GDB_CMD_THREAD_ALIVE,   /* T tid */
	GDB_CMD_CURRENT_THREAD, /* qC */
	GDB_CMD_THREADS_FIRST,  /* qfThreadInfo */
	GDB_CMD_THREADS_NEXT,   /* qsThreadInfo */
	GDB_CMD_THREAD_EXTRA,   /* qThreadExtraInfo,tid */
	GDB_CMD_XFER_FEATURES,  /* qXfer:features:read:annex:offset,length */
	GDB_CMD_ATTACHED,       /* qAttached */
	GDB_CMD_NOACK,          /* QStartNoAckMode */
	GDB_CMD_DETACH,         /* D, D;pid */
	GDB_CMD_KILL,           /* k (no reply) */
	GDB_CMD_VKILL,          /* vKill;pid (reply OK) */
	GDB_CMD_SYMBOL,         /* qSymbol:: */
};

/* Thread ids: GDB_TID_ALL (-1), GDB_TID_ANY (0), or vCPU id + 1. */
#define GDB_TID_ALL (-1)
#define GDB_TID_ANY 0

struct gdb_vcont_action {
	char op; /* 'c', 's' or 'r' (C and S become c and s; the signal is kept) */
	uint8_t sig;
	int64_t tid;         /* GDB_TID_ALL when the action names no thread */
	uint64_t start, end; /* 'r': step while start <= pc < end */
};

#define GDB_VCONT_MAX 16
#define GDB_ANNEX_MAX 64

struct gdb_cmd {
	enum gdb_cmd_kind kind;
	const char *why;    /* MALFORMED: a short reason */
	uint64_t addr, len; /* memory, breakpoints (len = kind), qXfer offset/length */
	bool has_addr;      /* c/s with a resume address */
	bool has_sig;       /* C/S: a signal was given (gdb.c ignores it, as QEMU does) */
	uint8_t sig;        /* C/S: the signal number */
	unsigned reg;       /* p/P */
	int bp_type;        /* Z/z: 0 sw, 1 hw, 2 write, 3 read, 4 access */
	char thread_op;     /* H: 'g' or 'c' */
	int64_t tid;        /* H, T, qThreadExtraInfo */
	const char *data;   /* G, P, M: hex digits; X: binary; inside the packet */
	size_t data_len;
	char annex[GDB_ANNEX_MAX]; /* qXfer */
	struct gdb_vcont_action actions[GDB_VCONT_MAX];
	unsigned n_actions;
};

/*
 * Parse one packet payload (as gdb_rx gave it: pkt[len] is NUL, but the
 * payload may contain NULs in binary data). Always fills *cmd; returns
 * its kind.
 */
enum gdb_cmd_kind gdb_parse(const char *pkt, size_t len, struct gdb_cmd *cmd);

#endif
