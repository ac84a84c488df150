/* SPDX-License-Identifier: Apache-2.0 */
/* The gdb stub's pure parts: packet framing and parsing, x86 registers,
 * page walks, debug-register encoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/gdb/gdb_proto.h"
#include "vmm/gdb/gdb_x86.h"

/* ---- framing ---------------------------------------------------------------- */

/* Feed a string; the last event that was not NONE. */
static enum gdb_rx_event feed(struct gdb_rx *rx, const char *s, size_t n)
{
	enum gdb_rx_event last = GDB_RX_NONE;

	for (size_t i = 0; i < n; i++) {
		enum gdb_rx_event e = gdb_rx_byte(rx, (uint8_t)s[i]);
		if (e != GDB_RX_NONE)
			last = e;
	}
	return last;
}

#define FEED(rx, s) feed(rx, s, sizeof(s) - 1)

static void test_rx_packets(void **state)
{
	static struct gdb_rx rx;

	gdb_rx_init(&rx);
	assert_int_equal(FEED(&rx, "$g#67"), GDB_RX_PACKET);
	assert_int_equal(rx.len, 1);
	assert_string_equal(rx.buf, "g");
	assert_int_equal(FEED(&rx, "$g#68"), GDB_RX_BAD_CHECKSUM);
	assert_int_equal(FEED(&rx, "$g#6z"), GDB_RX_BAD_CHECKSUM);
	assert_int_equal(FEED(&rx, "+"), GDB_RX_ACK);
	assert_int_equal(FEED(&rx, "-"), GDB_RX_NAK);
	assert_int_equal(FEED(&rx, "\x03"), GDB_RX_INTERRUPT);
	/* noise between packets is ignored; checksum digits in upper case */
	assert_int_equal(FEED(&rx, "xyz\r\n$?#3F"), GDB_RX_PACKET);
	assert_string_equal(rx.buf, "?");
	/* a '$' inside a packet starts it again */
	assert_int_equal(FEED(&rx, "$m1,$g#67"), GDB_RX_PACKET);
	assert_string_equal(rx.buf, "g");
	/* 0x03 inside a packet is data, not Ctrl-C */
	assert_false(gdb_rx_mid_packet(&rx));
	assert_int_equal(FEED(&rx, "$\x03"), GDB_RX_NONE);
	assert_true(gdb_rx_mid_packet(&rx));
	assert_int_equal(FEED(&rx, "#03"), GDB_RX_PACKET);
	assert_int_equal(rx.len, 1);
	/* empty packet */
	assert_int_equal(FEED(&rx, "$#00"), GDB_RX_PACKET);
	assert_int_equal(rx.len, 0);
}

static void test_rx_too_long(void **state)
{
	static struct gdb_rx rx;
	uint8_t sum = 0;

	gdb_rx_init(&rx);
	gdb_rx_byte(&rx, '$');
	for (int i = 0; i < GDB_PACKET_MAX + 10; i++) {
		assert_int_equal(gdb_rx_byte(&rx, 'a'), GDB_RX_NONE);
		sum = (uint8_t)(sum + 'a');
	}
	char cs[4];
	snprintf(cs, sizeof(cs), "#%02x", sum);
	assert_int_equal(feed(&rx, cs, 3), GDB_RX_TOO_LONG);
	assert_int_equal(rx.len, 0);
	/* and the next packet is fine */
	assert_int_equal(FEED(&rx, "$g#67"), GDB_RX_PACKET);
	/* a bad checksum on a long packet says so first */
	gdb_rx_byte(&rx, '$');
	for (int i = 0; i < GDB_PACKET_MAX + 1; i++)
		gdb_rx_byte(&rx, 'a');
	assert_int_equal(FEED(&rx, "#zz"), GDB_RX_BAD_CHECKSUM);
}

static void test_frame(void **state)
{
	char out[16];

	assert_int_equal(gdb_frame(out, sizeof(out), "OK", 2), 6);
	assert_memory_equal(out, "$OK#9a", 6);
	assert_int_equal(gdb_frame(out, sizeof(out), "", 0), 4);
	assert_memory_equal(out, "$#00", 4);
	assert_int_equal(gdb_frame(out, 5, "OK", 2), 0);
	assert_int_equal(gdb_frame(out, 3, "", 0), 0);
	/* what we frame, we parse back */
	static struct gdb_rx rx;
	gdb_rx_init(&rx);
	size_t n = gdb_frame(out, sizeof(out), "qC", 2);
	assert_int_equal(feed(&rx, out, n), GDB_RX_PACKET);
	assert_string_equal(rx.buf, "qC");
}

/* ---- encodings -------------------------------------------------------------------- */

static void test_hex(void **state)
{
	const uint8_t in[] = {0x00, 0x7f, 0xab, 0xff};
	uint8_t back[4];
	char out[8];

	assert_int_equal(gdb_hex_encode(out, in, 4), 8);
	assert_memory_equal(out, "007fabff", 8);
	assert_int_equal(gdb_hex_decode(back, "007FaBff", 8), 0);
	assert_memory_equal(back, in, 4);
	assert_int_equal(gdb_hex_decode(back, "007", 3), -1);
	assert_int_equal(gdb_hex_decode(back, "0g", 2), -1);
	assert_int_equal(gdb_hex_val('x'), -1);
}

static void test_binary(void **state)
{
	const uint8_t raw[] = {'#', 'a', '$', '}', '*', 0, 0xff};
	char esc[32];
	uint8_t back[8];

	size_t n = gdb_escape_bin(esc, sizeof(esc), raw, sizeof(raw));
	assert_int_equal(n, sizeof(raw) + 4);
	assert_null(memchr(esc, '#', n));
	assert_null(memchr(esc, '$', n));
	assert_int_equal(gdb_unescape_bin(back, sizeof(raw), esc, n), 0);
	assert_memory_equal(back, raw, sizeof(raw));
	assert_int_equal(gdb_unescape_bin(back, sizeof(raw) + 1, esc, n), -1); /* short */
	assert_int_equal(gdb_unescape_bin(back, sizeof(raw) - 1, esc, n), -1); /* long */
	assert_int_equal(gdb_unescape_bin(back, 1, "}", 1), -1);               /* cut escape */
	assert_int_equal(gdb_escape_bin(esc, 2, raw, 2), 0);                   /* no room */
	assert_int_equal(gdb_unescape_bin(back, 0, "", 0), 0);
}

/* ---- commands ------------------------------------------------------------------------- */

static enum gdb_cmd_kind parse(const char *s, struct gdb_cmd *c)
{
	return gdb_parse(s, strlen(s), c);
}

static void test_parse_basic(void **state)
{
	struct gdb_cmd c;

	assert_int_equal(parse("?", &c), GDB_CMD_STOP_REASON);
	assert_int_equal(parse("g", &c), GDB_CMD_READ_REGS);
	assert_int_equal(parse("G0011", &c), GDB_CMD_WRITE_REGS);
	assert_int_equal(c.data_len, 4);
	assert_int_equal(parse("p10", &c), GDB_CMD_READ_REG);
	assert_int_equal(c.reg, 16);
	assert_int_equal(parse("P10=0011223344556677", &c), GDB_CMD_WRITE_REG);
	assert_int_equal(c.data_len, 16);
	assert_int_equal(parse("m100000,40", &c), GDB_CMD_READ_MEM);
	assert_int_equal(c.addr, 0x100000);
	assert_int_equal(c.len, 0x40);
	assert_int_equal(parse("M10,2:abcd", &c), GDB_CMD_WRITE_MEM);
	assert_int_equal(parse("X10,0:", &c), GDB_CMD_WRITE_MEM_BIN);
	assert_int_equal(c.data_len, 0);
	assert_int_equal(parse("c", &c), GDB_CMD_CONTINUE);
	assert_false(c.has_addr);
	assert_int_equal(parse("c1234", &c), GDB_CMD_CONTINUE);
	assert_true(c.has_addr);
	assert_int_equal(c.addr, 0x1234);
	assert_int_equal(parse("s", &c), GDB_CMD_STEP);
	assert_false(c.has_sig);
	assert_int_equal(parse("C05", &c), GDB_CMD_CONTINUE);
	assert_true(c.has_sig);
	assert_int_equal(c.sig, 5);
	assert_false(c.has_addr);
	assert_int_equal(parse("S0b;10", &c), GDB_CMD_STEP);
	assert_true(c.has_sig);
	assert_int_equal(c.sig, 11);
	assert_true(c.has_addr);
	assert_int_equal(c.addr, 0x10);
	assert_int_equal(parse("Z0,101000,1", &c), GDB_CMD_INSERT_BP);
	assert_int_equal(c.bp_type, 0);
	assert_int_equal(c.addr, 0x101000);
	assert_int_equal(parse("z2,2000,4", &c), GDB_CMD_REMOVE_BP);
	assert_int_equal(c.len, 4);
	assert_int_equal(parse("D", &c), GDB_CMD_DETACH);
	assert_int_equal(parse("D;1", &c), GDB_CMD_DETACH);
	assert_int_equal(parse("k", &c), GDB_CMD_KILL);
	assert_int_equal(parse("vKill;1", &c), GDB_CMD_VKILL);
	assert_int_equal(parse("", &c), GDB_CMD_UNSUPPORTED);
	assert_int_equal(parse("vMustReplyEmpty", &c), GDB_CMD_UNSUPPORTED);
	assert_int_equal(parse("!", &c), GDB_CMD_UNSUPPORTED);
}

static void test_parse_queries(void **state)
{
	struct gdb_cmd c;

	assert_int_equal(parse("qSupported:multiprocess+;swbreak+", &c), GDB_CMD_QSUPPORTED);
	assert_int_equal(parse("qfThreadInfo", &c), GDB_CMD_THREADS_FIRST);
	assert_int_equal(parse("qsThreadInfo", &c), GDB_CMD_THREADS_NEXT);
	assert_int_equal(parse("qC", &c), GDB_CMD_CURRENT_THREAD);
	assert_int_equal(parse("qCRC:1,2", &c), GDB_CMD_UNSUPPORTED);
	assert_int_equal(parse("qAttached:1", &c), GDB_CMD_ATTACHED);
	assert_int_equal(parse("qSymbol::", &c), GDB_CMD_SYMBOL);
	assert_int_equal(parse("QStartNoAckMode", &c), GDB_CMD_NOACK);
	assert_int_equal(parse("qThreadExtraInfo,2", &c), GDB_CMD_THREAD_EXTRA);
	assert_int_equal(c.tid, 2);
	assert_int_equal(parse("qXfer:features:read:target.xml:0,ffb", &c), GDB_CMD_XFER_FEATURES);
	assert_string_equal(c.annex, "target.xml");
	assert_int_equal(c.len, 0xffb);
	assert_int_equal(parse("qXfer:auxv:read::0,10", &c), GDB_CMD_UNSUPPORTED);
	assert_int_equal(parse("qOffsets", &c), GDB_CMD_UNSUPPORTED);
}

static void test_parse_threads(void **state)
{
	struct gdb_cmd c;

	assert_int_equal(parse("Hg0", &c), GDB_CMD_SET_THREAD);
	assert_int_equal(c.thread_op, 'g');
	assert_int_equal(c.tid, GDB_TID_ANY);
	assert_int_equal(parse("Hc-1", &c), GDB_CMD_SET_THREAD);
	assert_int_equal(c.tid, GDB_TID_ALL);
	assert_int_equal(parse("Hg2", &c), GDB_CMD_SET_THREAD);
	assert_int_equal(c.tid, 2);
	assert_int_equal(parse("Hgp1.3", &c), GDB_CMD_SET_THREAD);
	assert_int_equal(c.tid, 3);
	assert_int_equal(parse("T3", &c), GDB_CMD_THREAD_ALIVE);
	assert_int_equal(parse("vCont?", &c), GDB_CMD_VCONT_QUERY);
	assert_int_equal(parse("vCont;s:1;c", &c), GDB_CMD_VCONT);
	assert_int_equal(c.n_actions, 2);
	assert_int_equal(c.actions[0].op, 's');
	assert_int_equal(c.actions[0].tid, 1);
	assert_int_equal(c.actions[1].op, 'c');
	assert_int_equal(c.actions[1].tid, GDB_TID_ALL);
	assert_int_equal(parse("vCont;C02:2;S05", &c), GDB_CMD_VCONT);
	assert_int_equal(c.actions[0].op, 'c');
	assert_int_equal(c.actions[0].sig, 2);
	assert_int_equal(c.actions[1].op, 's');
	assert_int_equal(parse("vCont;r100,120:1;c", &c), GDB_CMD_VCONT);
	assert_int_equal(c.actions[0].op, 'r');
	assert_int_equal(c.actions[0].start, 0x100);
	assert_int_equal(c.actions[0].end, 0x120);
	assert_int_equal(c.actions[0].tid, 1);
}

static void test_parse_malformed(void **state)
{
	static const char *bad[] = {
	    "m",
	    "m1",
	    "m1,",
	    "mzz,1",
	    "m1,1x",
	    "M1,2:abc",
	    "M1,1",
	    "M1,1:zz0",
	    "p",
	    "pz",
	    "P1",
	    "P10000=00",
	    "Z5,1,1",
	    "Z0,1",
	    "Z0,1,1;X1,0",
	    "z0",
	    "H",
	    "Hgz",
	    "T",
	    "Tz",
	    "vCont",
	    "vCont;",
	    "vCont;x",
	    "vCont;r1:1",
	    "vCont;C",
	    "vCont;s:",
	    "c1x",
	    "Cz",
	    "C05;",
	    "S05x",
	    "g0",
	    "?x",
	    "k1",
	    "m10000000000000000,1", /* 17 digits */
	    "qThreadExtraInfo,",
	    "qXfer:features:read:target.xml",
	    "X1,2:a",
	    "X1,1:}",
	};
	struct gdb_cmd c;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		enum gdb_cmd_kind k = parse(bad[i], &c);
		if (k != GDB_CMD_MALFORMED && k != GDB_CMD_WRITE_MEM_BIN)
			fail_msg("'%s' parsed as kind %d", bad[i], k);
	}
	/* X is checked when its data is decoded, against the length */
	uint8_t buf[4];
	assert_int_equal(parse("X1,2:a", &c), GDB_CMD_WRITE_MEM_BIN);
	assert_int_equal(gdb_unescape_bin(buf, c.len, c.data, c.data_len), -1);
	/* more than GDB_VCONT_MAX actions */
	char many[256] = "vCont";
	for (int i = 0; i <= GDB_VCONT_MAX; i++)
		strcat(many, ";c");
	assert_int_equal(parse(many, &c), GDB_CMD_MALFORMED);
	/* an annex that does not fit */
	char annex[200] = "qXfer:features:read:";
	memset(annex + strlen(annex), 'a', 100);
	strcat(annex, ":0,1");
	assert_int_equal(parse(annex, &c), GDB_CMD_MALFORMED);
	/* M longer than a packet can carry */
	assert_int_equal(parse("M0,ffffffff:00", &c), GDB_CMD_MALFORMED);
	/* binary data with NUL bytes in it is data */
	assert_int_equal(gdb_parse("X0,1:\0", 6, &c), GDB_CMD_WRITE_MEM_BIN);
	assert_int_equal(c.data_len, 1);
}

/* ---- x86 registers ------------------------------------------------------------------- */

static struct gdb_x86_state sample_state(void)
{
	struct gdb_x86_state s = {0};

	s.regs = (struct spk_x86_regs){1,  2,  3,  4,  5,  6,  7,  8,        9,
	                               10, 11, 12, 13, 14, 15, 16, 0x101000, 0x246};
	s.sregs.cs.selector = 8;
	s.sregs.ss.selector = s.sregs.ds.selector = 0x10;
	s.sregs.fs.base = 0xfffff000;
	s.sregs.cr0 = 0x80050033;
	s.sregs.cr3 = 0x10000;
	s.sregs.efer = 0x501;
	return s;
}

static void test_regs_read(void **state)
{
	struct gdb_x86_state s = sample_state();
	static char out[4096];
	size_t total = 0;

	for (unsigned n = 0; n < GDB_X86_NREGS; n++)
		total += 2 * gdb_x86_reg_size(n);
	assert_int_equal(gdb_x86_regs_hex(&s, out, sizeof(out)), total);
	assert_int_equal(gdb_x86_regs_hex(&s, out, 10), 0);
	/* rax rbx rcx rdx rsi rdi rbp rsp: gdb's order, not ours */
	assert_int_equal(gdb_x86_reg_hex(&s, 0, out), 16);
	assert_memory_equal(out, "0100000000000000", 16);
	gdb_x86_reg_hex(&s, 6, out); /* rbp */
	assert_memory_equal(out, "0800000000000000", 16);
	gdb_x86_reg_hex(&s, 7, out); /* rsp */
	assert_memory_equal(out, "0700000000000000", 16);
	gdb_x86_reg_hex(&s, GDB_X86_RIP, out);
	assert_memory_equal(out, "0010100000000000", 16);
	assert_int_equal(gdb_x86_reg_hex(&s, GDB_X86_EFLAGS, out), 8);
	assert_memory_equal(out, "46020000", 8);
	gdb_x86_reg_hex(&s, GDB_X86_CS, out);
	assert_memory_equal(out, "08000000", 8);
	assert_int_equal(gdb_x86_reg_hex(&s, GDB_X86_ST0, out), 20);
	assert_memory_equal(out, "xxxxxxxxxxxxxxxxxxxx", 20);
	assert_int_equal(gdb_x86_reg_hex(&s, GDB_X86_XMM0 + 3, out), 32);
	gdb_x86_reg_hex(&s, GDB_X86_CR3, out);
	assert_memory_equal(out, "0000010000000000", 16);
	gdb_x86_reg_hex(&s, GDB_X86_FS_BASE, out);
	assert_memory_equal(out, "00f0ffff00000000", 16);
	assert_int_equal(gdb_x86_reg_hex(&s, GDB_X86_NREGS, out), 0);
	assert_false(gdb_x86_reg_available(GDB_X86_MXCSR));
	assert_true(gdb_x86_reg_available(GDB_X86_EFER));
}

static void test_regs_write(void **state)
{
	struct gdb_x86_state s = sample_state(), t = {0};
	const char *why = NULL;
	static char hex[4096];
	uint8_t v[8] = {0x78, 0x56, 0x34, 0x12, 0, 0, 0, 0};

	/* G with what g gave back leaves everything as it was */
	size_t n = gdb_x86_regs_hex(&s, hex, sizeof(hex));
	t.sregs = s.sregs; /* selectors cannot change */
	assert_int_equal(gdb_x86_regs_set(&t, hex, n, &why), 0);
	assert_memory_equal(&t.regs, &s.regs, sizeof(s.regs));
	assert_int_equal(t.sregs.cr3, s.sregs.cr3);
	/* wrong lengths, bad hex, another selector */
	assert_int_equal(gdb_x86_regs_set(&t, hex, n - 1, &why), -1);
	assert_int_equal(gdb_x86_regs_set(&t, hex, n + 2, &why), -1);
	hex[3] = 'g';
	assert_int_equal(gdb_x86_regs_set(&t, hex, n, &why), -1);
	assert_int_equal(gdb_x86_regs_set(&t, "", 0, &why), 0);
	/* P */
	assert_int_equal(gdb_x86_reg_set(&t, GDB_X86_RIP, v, 8, &why), 0);
	assert_int_equal(t.regs.rip, 0x12345678);
	assert_int_equal(gdb_x86_reg_set(&t, GDB_X86_EFLAGS, v, 4, &why), 0);
	assert_int_equal(t.regs.rflags, 0x12345678);
	assert_int_equal(gdb_x86_reg_set(&t, GDB_X86_EFLAGS, v, 8, &why), -1);
	assert_int_equal(gdb_x86_reg_set(&t, GDB_X86_CS, v, 4, &why), -1);
	assert_non_null(why);
	uint8_t cs[4] = {8, 0, 0, 0};
	assert_int_equal(gdb_x86_reg_set(&t, GDB_X86_CS, cs, 4, &why), 0);
	assert_int_equal(gdb_x86_reg_set(&t, GDB_X86_ST0, v, 10, &why), -1);
	assert_int_equal(gdb_x86_reg_set(&t, GDB_X86_NREGS, v, 8, &why), -1);
	assert_int_equal(gdb_x86_reg_set(&t, GDB_X86_CR8, v, 8, &why), 0);
	assert_int_equal(t.sregs.cr8, 0x12345678);
	assert_int_equal(gdb_x86_reg_set(&t, 3, v, 8, &why), 0); /* rdx */
	assert_int_equal(t.regs.rdx, 0x12345678);
}

static void test_xml(void **state)
{
	static char xml[GDB_X86_XML_MAX];
	size_t len = gdb_x86_xml("target.xml", xml, sizeof(xml));

	assert_true(len > 0);
	assert_int_equal(strlen(xml), len);
	assert_non_null(strstr(xml, "<architecture>i386:x86-64</architecture>"));
	assert_non_null(strstr(xml, "org.gnu.gdb.i386.core"));
	assert_non_null(strstr(xml, "org.gnu.gdb.i386.sse"));
	assert_int_equal(gdb_x86_xml("../../etc/passwd", xml, sizeof(xml)), 0);
	char small[100];
	assert_int_equal(gdb_x86_xml("target.xml", small, sizeof(small)), 0);
	/* as many registers as the g packet has, none with '#', '$' or '}' */
	size_t regs = 0;
	for (const char *p = xml; (p = strstr(p, "<reg ")); p++)
		regs++;
	assert_int_equal(regs, GDB_X86_NREGS);
	assert_null(strpbrk(xml, "#$}*"));
}

/* ---- page walks ------------------------------------------------------------------------- */

#define PHYS (1u << 20)
static uint8_t *phys;

static int rd(void *ctx, uint64_t gpa, void *buf, size_t len)
{
	if (gpa >= PHYS || len > PHYS - gpa)
		return -1;
	memcpy(buf, phys + gpa, len);
	return 0;
}

static void put64(uint64_t gpa, uint64_t v)
{
	memcpy(phys + gpa, &v, 8);
}

static void put32(uint64_t gpa, uint32_t v)
{
	memcpy(phys + gpa, &v, 4);
}

static void test_walk_long(void **state)
{
	struct spk_x86_sregs s = {.cr0 = 1u << 31, .cr4 = 1u << 5, .efer = 1u << 10, .cr3 = 0x1000};
	uint64_t gpa, left;

	phys = calloc(1, PHYS);
	/* 0xffff800000201123 -> PML4[256] -> PDPT[0] -> PD[1] -> PT[1] -> 0x50000 */
	uint64_t va = 0xffff800000201123ull;
	put64(0x1000 + 256 * 8, 0x2000 | 1);
	put64(0x2000 + 0 * 8, 0x3000 | 1);
	put64(0x3000 + 1 * 8, 0x4000 | 1);
	put64(0x4000 + 1 * 8, 0x50000 | 1 | (1ull << 63)); /* NX is not an address bit */
	assert_int_equal(gdb_x86_translate(&s, va, rd, NULL, &gpa, &left), 0);
	assert_int_equal(gpa, 0x50123);
	assert_int_equal(left, 0x1000 - 0x123);
	/* not present */
	assert_int_equal(gdb_x86_translate(&s, va + 0x1000, rd, NULL, &gpa, &left), -1);
	/* non-canonical */
	assert_int_equal(gdb_x86_translate(&s, 0x0000800000000000ull, rd, NULL, &gpa, &left), -1);
	/* a 2 MiB page: PD[2] with PS */
	put64(0x3000 + 2 * 8, 0x600000 | 1 | (1u << 7));
	assert_int_equal(gdb_x86_translate(&s, 0xffff800000412345ull, rd, NULL, &gpa, &left), 0);
	assert_int_equal(gpa, 0x612345);
	assert_int_equal(left, 0x200000 - 0x12345);
	/* a 1 GiB page: PDPT[1] with PS */
	put64(0x2000 + 1 * 8, 0x40000000 | 1 | (1u << 7));
	assert_int_equal(gdb_x86_translate(&s, 0xffff800040000010ull, rd, NULL, &gpa, &left), 0);
	assert_int_equal(gpa, 0x40000010);
	/* a table outside memory */
	put64(0x2000 + 2 * 8, 0x7fff0000000ull | 1);
	assert_int_equal(gdb_x86_translate(&s, 0xffff800080000000ull, rd, NULL, &gpa, &left), -1);
	/* 5-level: one more table on top */
	s.cr4 |= 1u << 12;
	s.cr3 = 0x8000;
	put64(0x8000 + 0 * 8, 0x1000 | 1);
	assert_int_equal(gdb_x86_translate(&s, 0x0000800000201123ull, rd, NULL, &gpa, &left), 0);
	assert_int_equal(gpa, 0x50123);
	free(phys);
}

static void test_walk_legacy(void **state)
{
	struct spk_x86_sregs s = {0};
	uint64_t gpa, left;

	phys = calloc(1, PHYS);
	/* paging off: the address itself */
	assert_int_equal(gdb_x86_translate(&s, 0x1234, rd, NULL, &gpa, &left), 0);
	assert_int_equal(gpa, 0x1234);
	assert_int_equal(left, 0x1000 - 0x234);
	/* 32-bit: PD at 0x1000, 0x00401abc -> PD[1] -> PT at 0x2000 [1] -> 0x7000 */
	s.cr0 = 1u << 31;
	s.cr3 = 0x1000;
	put32(0x1000 + 1 * 4, 0x2000 | 1);
	put32(0x2000 + 1 * 4, 0x7000 | 1);
	assert_int_equal(gdb_x86_translate(&s, 0x00401abc, rd, NULL, &gpa, &left), 0);
	assert_int_equal(gpa, 0x7abc);
	/* a 4 MiB page needs CR4.PSE */
	put32(0x1000 + 2 * 4, 0x00c00000 | 1 | (1u << 7));
	assert_int_equal(gdb_x86_translate(&s, 0x00812345, rd, NULL, &gpa, &left), -1);
	s.cr4 = 1u << 4;
	assert_int_equal(gdb_x86_translate(&s, 0x00812345, rd, NULL, &gpa, &left), 0);
	assert_int_equal(gpa, 0xc12345);
	/* PAE: PDPT at 0x3000, [0] -> PD 0x4000 [0] -> PT 0x5000 [3] -> 0x9000 */
	s.cr4 = 1u << 5;
	s.cr3 = 0x3000;
	put64(0x3000, 0x4000 | 1);
	put64(0x4000, 0x5000 | 1);
	put64(0x5000 + 3 * 8, 0x9000 | 1);
	assert_int_equal(gdb_x86_translate(&s, 0x3456, rd, NULL, &gpa, &left), 0);
	assert_int_equal(gpa, 0x9456);
	free(phys);
}

/* ---- debug registers -------------------------------------------------------------------- */

static void test_dr7(void **state)
{
	struct gdb_x86_dr dr[4] = {0};

	assert_int_equal(gdb_x86_dr7(dr), 0);
	dr[0] = (struct gdb_x86_dr){true, GDB_X86_DR_EXEC, 0x1000, 1};
	assert_int_equal(gdb_x86_dr7(dr), 0x1 | 0x300);
	dr[1] = (struct gdb_x86_dr){true, GDB_X86_DR_WRITE, 0x2000, 4};
	/* L1 (bit 2), R/W1 = 01 (bits 20-21), LEN1 = 11 (bits 22-23) */
	assert_int_equal(gdb_x86_dr7(dr), 0x1 | 0x4 | 0x300 | (1u << 20) | (3u << 22));
	dr[0].used = false;
	dr[3] = (struct gdb_x86_dr){true, GDB_X86_DR_ACCESS, 0x3000, 8};
	/* L3 (bit 6), R/W3 = 11 (bits 28-29), LEN3 = 10 (bits 30-31) */
	assert_int_equal(gdb_x86_dr7(dr), 0x4 | 0x40 | 0x300 | (1u << 20) | (3u << 22) |
	                                      (3ull << 28) | (2ull << 30));
	dr[2] = (struct gdb_x86_dr){true, GDB_X86_DR_WRITE, 0x4000, 2};
	assert_int_equal((gdb_x86_dr7(dr) >> 24) & 0xf, 0x1 | (1u << 2));
}

static void test_split(void **state)
{
	uint64_t a[4];
	unsigned l[4];

	assert_int_equal(gdb_x86_split(0x1000, 4, a, l, 4), 1);
	assert_int_equal(l[0], 4);
	assert_int_equal(gdb_x86_split(0x1000, 8, a, l, 4), 1);
	assert_int_equal(gdb_x86_split(0x1001, 4, a, l, 4), 3); /* 1 + 2 + 1 */
	assert_int_equal(a[0], 0x1001);
	assert_int_equal(l[0], 1);
	assert_int_equal(a[1], 0x1002);
	assert_int_equal(l[1], 2);
	assert_int_equal(a[2], 0x1004);
	assert_int_equal(l[2], 1);
	assert_int_equal(gdb_x86_split(0x1000, 32, a, l, 4), 4);
	assert_int_equal(gdb_x86_split(0x1000, 33, a, l, 4), -1);
	assert_int_equal(gdb_x86_split(0x1000, 0, a, l, 4), -1);
	assert_int_equal(gdb_x86_split(~0ull, 2, a, l, 4), -1);
	assert_int_equal(gdb_x86_split(0x1003, 2, a, l, 1), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rx_packets),
	    cmocka_unit_test(test_rx_too_long),
	    cmocka_unit_test(test_frame),
	    cmocka_unit_test(test_hex),
	    cmocka_unit_test(test_binary),
	    cmocka_unit_test(test_parse_basic),
	    cmocka_unit_test(test_parse_queries),
	    cmocka_unit_test(test_parse_threads),
	    cmocka_unit_test(test_parse_malformed),
	    cmocka_unit_test(test_regs_read),
	    cmocka_unit_test(test_regs_write),
	    cmocka_unit_test(test_xml),
	    cmocka_unit_test(test_walk_long),
	    cmocka_unit_test(test_walk_legacy),
	    cmocka_unit_test(test_dr7),
	    cmocka_unit_test(test_split),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
