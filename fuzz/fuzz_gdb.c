/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the gdb stub's pure parts: arbitrary bytes from a
 * debugger's socket go through the framer; every packet is parsed, and its
 * data decoded the way the stub would (registers, hex and binary memory
 * writes, qXfer slices, stop replies framed back). The same bytes also
 * serve as guest page tables for the page walker. It asserts what must
 * hold; the sanitizers catch the rest.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/gdb/gdb_proto.h"
#include "vmm/gdb/gdb_x86.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PHYS_SIZE 65536

static struct gdb_rx rx;
static uint8_t mem[GDB_PACKET_MAX];
static char reply[GDB_PACKET_MAX + 8];
static char framed[GDB_PACKET_MAX + 16];
static char xml[GDB_X86_XML_MAX];
static uint8_t phys[PHYS_SIZE];

static void frame_reply(size_t len)
{
	size_t n = gdb_frame(framed, sizeof(framed), reply, len);

	if (n != len + 4)
		abort(); /* every reply the stub builds fits its frame */
}

static void regs(const struct gdb_cmd *c)
{
	struct gdb_x86_state s = {0};
	const char *why = NULL;
	uint8_t val[16];

	if (c->kind == GDB_CMD_WRITE_REGS) {
		if (gdb_x86_regs_set(&s, c->data, c->data_len, &why) < 0 && !why)
			abort(); /* a refusal says why */
		frame_reply(gdb_x86_regs_hex(&s, reply, sizeof(reply)));
		return;
	}
	unsigned size = gdb_x86_reg_size(c->reg);
	if (c->kind == GDB_CMD_READ_REG) {
		frame_reply(gdb_x86_reg_hex(&s, c->reg, reply));
		return;
	}
	if (size && c->data_len == 2 * size && gdb_hex_decode(val, c->data, c->data_len) == 0)
		gdb_x86_reg_set(&s, c->reg, val, size, &why);
}

static void memory(const struct gdb_cmd *c)
{
	if (c->len > sizeof(mem))
		return; /* the stub answers E.. */
	if (c->kind == GDB_CMD_WRITE_MEM) {
		if (c->data_len != 2 * c->len)
			abort(); /* the parser checked the length, the decoder checks the digits */
		gdb_hex_decode(mem, c->data, c->data_len);
		return;
	}
	gdb_unescape_bin(mem, c->len, c->data, c->data_len);
}

static void xfer(const struct gdb_cmd *c)
{
	size_t len = gdb_x86_xml(c->annex, xml, sizeof(xml));

	if (!len || c->addr >= len)
		return;
	uint64_t n = len - c->addr, want = c->len < sizeof(reply) / 2 ? c->len : sizeof(reply) / 2;
	if (n > want)
		n = want;
	size_t o = gdb_escape_bin(reply + 1, sizeof(reply) - 1, (const uint8_t *)xml + c->addr, n);
	frame_reply(o + 1);
}

static void command(const char *pkt, size_t len)
{
	struct gdb_cmd c;

	switch (gdb_parse(pkt, len, &c)) {
	case GDB_CMD_WRITE_REGS:
	case GDB_CMD_WRITE_REG:
	case GDB_CMD_READ_REG:
		regs(&c);
		break;
	case GDB_CMD_WRITE_MEM:
	case GDB_CMD_WRITE_MEM_BIN:
		memory(&c);
		break;
	case GDB_CMD_XFER_FEATURES:
		xfer(&c);
		break;
	case GDB_CMD_READ_MEM:
		if (c.len <= GDB_PACKET_MAX / 2)
			frame_reply(gdb_hex_encode(reply, mem, c.len));
		break;
	case GDB_CMD_VCONT:
		if (c.n_actions == 0 || c.n_actions > GDB_VCONT_MAX)
			abort();
		break;
	default:
		break;
	}
}

static int rd(void *ctx, uint64_t gpa, void *buf, size_t len)
{
	if (gpa >= PHYS_SIZE || len > PHYS_SIZE - gpa)
		return -1;
	memcpy(buf, phys + gpa, len);
	return 0;
}

/* The input as guest memory, its first bytes as the MMU state. */
static void walk(const uint8_t *data, size_t size)
{
	struct spk_x86_sregs s = {0};
	uint64_t words[6] = {0}, gpa, left;

	memcpy(words, data, size < sizeof(words) ? size : sizeof(words));
	s.cr0 = words[0];
	s.cr3 = words[1] % PHYS_SIZE;
	s.cr4 = words[2];
	s.efer = words[3];
	memset(phys, 0, sizeof(phys));
	memcpy(phys, data, size < sizeof(phys) ? size : sizeof(phys));
	for (int i = 4; i < 6; i++)
		if (gdb_x86_translate(&s, words[i], rd, NULL, &gpa, &left) == 0 &&
		    (left == 0 || left > (1ull << 30)))
			abort(); /* a page is at most 1 GiB, and the address is in it */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	gdb_rx_init(&rx);
	for (size_t i = 0; i < size; i++) {
		enum gdb_rx_event e = gdb_rx_byte(&rx, data[i]);

		if (e == GDB_RX_PACKET) {
			if (rx.len > GDB_PACKET_MAX || rx.buf[rx.len] != 0)
				abort();
			command(rx.buf, rx.len);
		}
	}
	walk(data, size);
	return 0;
}
