/* SPDX-License-Identifier: Apache-2.0 */
/* The GDB remote serial protocol: framing, encodings, command parsing. */
#include <string.h>

#include "vmm/gdb/gdb_proto.h"

/* ---- framing --------------------------------------------------------- */

enum { RX_IDLE = 0, RX_DATA, RX_CSUM1, RX_CSUM2 };

void gdb_rx_init(struct gdb_rx *rx)
{
	rx->state = RX_IDLE;
	rx->sum = rx->theirs = 0;
	rx->overflow = rx->bad_digit = false;
	rx->len = 0;
	rx->buf[0] = 0;
}

bool gdb_rx_mid_packet(const struct gdb_rx *rx)
{
	return rx->state != RX_IDLE;
}

static enum gdb_rx_event rx_idle(struct gdb_rx *rx, uint8_t c)
{
	switch (c) {
	case '+':
		return GDB_RX_ACK;
	case '-':
		return GDB_RX_NAK;
	case 0x03:
		return GDB_RX_INTERRUPT;
	case '$':
		gdb_rx_init(rx);
		rx->state = RX_DATA;
		return GDB_RX_NONE;
	default:
		return GDB_RX_NONE; /* line noise between packets */
	}
}

static enum gdb_rx_event rx_end(struct gdb_rx *rx)
{
	rx->state = RX_IDLE;
	if (rx->bad_digit || rx->sum != rx->theirs)
		return GDB_RX_BAD_CHECKSUM;
	if (rx->overflow) {
		rx->len = 0;
		rx->buf[0] = 0;
		return GDB_RX_TOO_LONG;
	}
	rx->buf[rx->len] = 0;
	return GDB_RX_PACKET;
}

enum gdb_rx_event gdb_rx_byte(struct gdb_rx *rx, uint8_t c)
{
	int v;

	switch (rx->state) {
	case RX_IDLE:
		return rx_idle(rx, c);
	case RX_DATA:
		if (c == '#') {
			rx->state = RX_CSUM1;
			return GDB_RX_NONE;
		}
		if (c == '$') { /* a new packet before the end of this one: restart */
			gdb_rx_init(rx);
			rx->state = RX_DATA;
			return GDB_RX_NONE;
		}
		rx->sum = (uint8_t)(rx->sum + c);
		if (rx->len < GDB_PACKET_MAX)
			rx->buf[rx->len++] = (char)c;
		else
			rx->overflow = true;
		return GDB_RX_NONE;
	case RX_CSUM1:
	case RX_CSUM2:
		v = gdb_hex_val(c);
		if (v < 0)
			rx->bad_digit = true;
		rx->theirs = (uint8_t)(rx->theirs << 4 | (v < 0 ? 0 : v));
		if (rx->state == RX_CSUM1) {
			rx->state = RX_CSUM2;
			return GDB_RX_NONE;
		}
		return rx_end(rx);
	default:
		gdb_rx_init(rx);
		return GDB_RX_NONE;
	}
}

size_t gdb_frame(char *out, size_t cap, const char *payload, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t sum = 0;

	if (cap < 4 || len > cap - 4)
		return 0;
	out[0] = '$';
	for (size_t i = 0; i < len; i++) {
		out[1 + i] = payload[i];
		sum = (uint8_t)(sum + (uint8_t)payload[i]);
	}
	out[1 + len] = '#';
	out[2 + len] = hex[sum >> 4];
	out[3 + len] = hex[sum & 15];
	return len + 4;
}

/* ---- encodings -------------------------------------------------------- */

int gdb_hex_val(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

size_t gdb_hex_encode(char *out, const uint8_t *in, size_t n)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
	return 2 * n;
}

int gdb_hex_decode(uint8_t *out, const char *in, size_t nchars)
{
	if (nchars % 2)
		return -1;
	for (size_t i = 0; i < nchars / 2; i++) {
		int hi = gdb_hex_val((unsigned char)in[2 * i]);
		int lo = gdb_hex_val((unsigned char)in[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int gdb_unescape_bin(uint8_t *out, size_t want, const char *in, size_t n)
{
	size_t got = 0;

	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)in[i];

		if (c == '}') {
			if (++i == n)
				return -1;
			c = (uint8_t)in[i] ^ 0x20;
		}
		if (got == want)
			return -1;
		out[got++] = c;
	}
	return got == want ? 0 : -1;
}

size_t gdb_escape_bin(char *out, size_t cap, const uint8_t *in, size_t n)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		bool esc = in[i] == '#' || in[i] == '$' || in[i] == '}' || in[i] == '*';

		if (o + 1 + esc > cap)
			return 0;
		if (esc) {
			out[o++] = '}';
			out[o++] = (char)(in[i] ^ 0x20);
		} else {
			out[o++] = (char)in[i];
		}
	}
	return o;
}

/* ---- command parsing ------------------------------------------------------ */

/* A cursor over the packet: every read checks the end. */
struct cur {
	const char *p, *end;
};

static bool at_end(const struct cur *c)
{
	return c->p >= c->end;
}

static bool eat(struct cur *c, char ch)
{
	if (at_end(c) || *c->p != ch)
		return false;
	c->p++;
	return true;
}

static bool eat_str(struct cur *c, const char *s)
{
	size_t n = strlen(s);

	if ((size_t)(c->end - c->p) < n || memcmp(c->p, s, n) != 0)
		return false;
	c->p += n;
	return true;
}

/* 1 to 16 hex digits. */
static bool hex_u64(struct cur *c, uint64_t *out)
{
	uint64_t v = 0;
	int n = 0, d;

	while (!at_end(c) && (d = gdb_hex_val((unsigned char)*c->p)) >= 0) {
		if (++n > 16)
			return false;
		v = v << 4 | (uint64_t)d;
		c->p++;
	}
	*out = v;
	return n > 0;
}

/* A thread id: hex, "-1" (all), or "pPID.TID" (multiprocess form). */
static bool thread_id(struct cur *c, int64_t *tid)
{
	uint64_t v;

	if (eat(c, 'p')) {
		if (eat_str(c, "-1")) {
			*tid = GDB_TID_ALL;
			return !eat(c, '.') || eat_str(c, "-1") || hex_u64(c, &v);
		}
		if (!hex_u64(c, &v))
			return false;
		if (!eat(c, '.')) {
			*tid = GDB_TID_ALL; /* every thread of the process */
			return true;
		}
	}
	if (eat_str(c, "-1")) {
		*tid = GDB_TID_ALL;
		return true;
	}
	if (!hex_u64(c, &v) || v > INT32_MAX)
		return false;
	*tid = (int64_t)v;
	return true;
}

static enum gdb_cmd_kind bad(struct gdb_cmd *cmd, const char *why)
{
	cmd->kind = GDB_CMD_MALFORMED;
	cmd->why = why;
	return cmd->kind;
}

static enum gdb_cmd_kind done(struct gdb_cmd *cmd, struct cur *c, enum gdb_cmd_kind k)
{
	if (!at_end(c))
		return bad(cmd, "trailing characters");
	cmd->kind = k;
	return k;
}

/* "addr,len" */
static bool addr_len(struct cur *c, struct gdb_cmd *cmd)
{
	return hex_u64(c, &cmd->addr) && eat(c, ',') && hex_u64(c, &cmd->len);
}

static enum gdb_cmd_kind parse_mem(struct cur *c, struct gdb_cmd *cmd, char op)
{
	if (!addr_len(c, cmd))
		return bad(cmd, "want addr,length");
	if (op == 'm')
		return done(cmd, c, GDB_CMD_READ_MEM);
	if (!eat(c, ':'))
		return bad(cmd, "want ':' before the data");
	cmd->data = c->p;
	cmd->data_len = (size_t)(c->end - c->p);
	if (op == 'X') {
		cmd->kind = GDB_CMD_WRITE_MEM_BIN;
		return cmd->kind;
	}
	if (cmd->len > GDB_PACKET_MAX || cmd->data_len != 2 * cmd->len)
		return bad(cmd, "the data does not match the length");
	cmd->kind = GDB_CMD_WRITE_MEM;
	return cmd->kind;
}

static enum gdb_cmd_kind parse_reg(struct cur *c, struct gdb_cmd *cmd, char op)
{
	uint64_t n;

	if (!hex_u64(c, &n) || n > 0xffff)
		return bad(cmd, "want a register number");
	cmd->reg = (unsigned)n;
	if (op == 'p')
		return done(cmd, c, GDB_CMD_READ_REG);
	if (!eat(c, '='))
		return bad(cmd, "want '=' after the register number");
	cmd->data = c->p;
	cmd->data_len = (size_t)(c->end - c->p);
	cmd->kind = GDB_CMD_WRITE_REG;
	return cmd->kind;
}

/* c [addr], s [addr], C sig[;addr], S sig[;addr] */
static enum gdb_cmd_kind parse_resume(struct cur *c, struct gdb_cmd *cmd, char op)
{
	uint64_t sig;
	bool with_sig = op == 'C' || op == 'S';

	if (with_sig && (!hex_u64(c, &sig) || sig > 0xff))
		return bad(cmd, "want a signal number");
	if (with_sig) {
		cmd->has_sig = true;
		cmd->sig = (uint8_t)sig;
	}
	if (!at_end(c)) {
		if (with_sig && !eat(c, ';'))
			return bad(cmd, "want ';' before the address");
		if (!hex_u64(c, &cmd->addr))
			return bad(cmd, "want a resume address");
		cmd->has_addr = true;
	}
	return done(cmd, c, op == 'c' || op == 'C' ? GDB_CMD_CONTINUE : GDB_CMD_STEP);
}

static bool vcont_action(struct cur *c, struct gdb_vcont_action *a)
{
	uint64_t v;

	if (at_end(c))
		return false;
	char op = *c->p++;
	switch (op) {
	case 'c':
	case 's':
		a->op = op;
		break;
	case 'C':
	case 'S':
		if (!hex_u64(c, &v) || v > 0xff)
			return false;
		a->op = (char)(op + ('a' - 'A'));
		a->sig = (uint8_t)v;
		break;
	case 'r':
		if (!hex_u64(c, &a->start) || !eat(c, ',') || !hex_u64(c, &a->end))
			return false;
		a->op = 'r';
		break;
	default:
		return false;
	}
	a->tid = GDB_TID_ALL;
	if (eat(c, ':'))
		return thread_id(c, &a->tid);
	return true;
}

static enum gdb_cmd_kind parse_vcont(struct cur *c, struct gdb_cmd *cmd)
{
	if (eat(c, '?'))
		return done(cmd, c, GDB_CMD_VCONT_QUERY);
	while (eat(c, ';')) {
		if (cmd->n_actions == GDB_VCONT_MAX)
			return bad(cmd, "too many vCont actions");
		if (!vcont_action(c, &cmd->actions[cmd->n_actions++]))
			return bad(cmd, "bad vCont action");
	}
	if (cmd->n_actions == 0)
		return bad(cmd, "vCont without an action");
	return done(cmd, c, GDB_CMD_VCONT);
}

static enum gdb_cmd_kind parse_v(struct cur *c, struct gdb_cmd *cmd)
{
	if (eat_str(c, "Cont"))
		return parse_vcont(c, cmd);
	if (eat_str(c, "Kill")) {
		c->p = c->end; /* ;pid: there is one process */
		return done(cmd, c, GDB_CMD_VKILL);
	}
	return GDB_CMD_UNSUPPORTED; /* vMustReplyEmpty, vFile, vRun, ... */
}

static enum gdb_cmd_kind parse_bp(struct cur *c, struct gdb_cmd *cmd, char op)
{
	uint64_t type;

	if (!hex_u64(c, &type) || type > 4 || !eat(c, ',') || !addr_len(c, cmd))
		return bad(cmd, "want type,addr,kind");
	cmd->bp_type = (int)type;
	/* ;cond_list / ;cmds: target-side conditions, which we do not announce */
	if (!at_end(c) && *c->p == ';')
		return bad(cmd, "breakpoint conditions are not supported");
	return done(cmd, c, op == 'Z' ? GDB_CMD_INSERT_BP : GDB_CMD_REMOVE_BP);
}

static enum gdb_cmd_kind parse_h(struct cur *c, struct gdb_cmd *cmd)
{
	if (at_end(c))
		return bad(cmd, "H without an operation");
	cmd->thread_op = *c->p++;
	if (cmd->thread_op != 'g' && cmd->thread_op != 'c')
		return GDB_CMD_UNSUPPORTED;
	if (!thread_id(c, &cmd->tid))
		return bad(cmd, "bad thread id");
	return done(cmd, c, GDB_CMD_SET_THREAD);
}

/* qXfer:features:read:ANNEX:OFFSET,LENGTH */
static enum gdb_cmd_kind parse_xfer(struct cur *c, struct gdb_cmd *cmd)
{
	size_t n = 0;

	if (!eat_str(c, "features:read:"))
		return GDB_CMD_UNSUPPORTED;
	while (!at_end(c) && *c->p != ':') {
		if (n + 1 >= sizeof(cmd->annex))
			return bad(cmd, "annex too long");
		cmd->annex[n++] = *c->p++;
	}
	cmd->annex[n] = 0;
	if (!eat(c, ':') || !addr_len(c, cmd))
		return bad(cmd, "want annex:offset,length");
	return done(cmd, c, GDB_CMD_XFER_FEATURES);
}

static enum gdb_cmd_kind parse_q(struct cur *c, struct gdb_cmd *cmd)
{
	if (eat_str(c, "Supported")) {
		c->p = c->end; /* gdb's features: we only need to know it asked */
		return done(cmd, c, GDB_CMD_QSUPPORTED);
	}
	if (eat_str(c, "fThreadInfo"))
		return done(cmd, c, GDB_CMD_THREADS_FIRST);
	if (eat_str(c, "sThreadInfo"))
		return done(cmd, c, GDB_CMD_THREADS_NEXT);
	if (eat_str(c, "ThreadExtraInfo,")) {
		if (!thread_id(c, &cmd->tid))
			return bad(cmd, "bad thread id");
		return done(cmd, c, GDB_CMD_THREAD_EXTRA);
	}
	if (eat_str(c, "Xfer:"))
		return parse_xfer(c, cmd);
	if (eat_str(c, "Attached")) {
		c->p = c->end; /* :pid */
		return done(cmd, c, GDB_CMD_ATTACHED);
	}
	if (eat_str(c, "Symbol:")) {
		c->p = c->end;
		return done(cmd, c, GDB_CMD_SYMBOL);
	}
	if (c->end - c->p == 1 && eat(c, 'C'))
		return done(cmd, c, GDB_CMD_CURRENT_THREAD);
	return GDB_CMD_UNSUPPORTED;
}

static enum gdb_cmd_kind parse_upper_q(struct cur *c, struct gdb_cmd *cmd)
{
	if (eat_str(c, "StartNoAckMode"))
		return done(cmd, c, GDB_CMD_NOACK);
	return GDB_CMD_UNSUPPORTED;
}

static enum gdb_cmd_kind parse_letter(struct cur *c, struct gdb_cmd *cmd, char op)
{
	switch (op) {
	case '?':
		return done(cmd, c, GDB_CMD_STOP_REASON);
	case 'g':
		return done(cmd, c, GDB_CMD_READ_REGS);
	case 'G':
		cmd->data = c->p;
		cmd->data_len = (size_t)(c->end - c->p);
		cmd->kind = GDB_CMD_WRITE_REGS;
		return cmd->kind;
	case 'p':
	case 'P':
		return parse_reg(c, cmd, op);
	case 'm':
	case 'M':
	case 'X':
		return parse_mem(c, cmd, op);
	case 'c':
	case 'C':
	case 's':
	case 'S':
		return parse_resume(c, cmd, op);
	case 'Z':
	case 'z':
		return parse_bp(c, cmd, op);
	case 'H':
		return parse_h(c, cmd);
	case 'T':
		if (!thread_id(c, &cmd->tid))
			return bad(cmd, "bad thread id");
		return done(cmd, c, GDB_CMD_THREAD_ALIVE);
	case 'D':
		c->p = c->end; /* D;pid */
		return done(cmd, c, GDB_CMD_DETACH);
	case 'k':
		return done(cmd, c, GDB_CMD_KILL);
	case 'v':
		return parse_v(c, cmd);
	case 'q':
		return parse_q(c, cmd);
	case 'Q':
		return parse_upper_q(c, cmd);
	default:
		return GDB_CMD_UNSUPPORTED;
	}
}

enum gdb_cmd_kind gdb_parse(const char *pkt, size_t len, struct gdb_cmd *cmd)
{
	struct cur c = {pkt, pkt + len};

	memset(cmd, 0, sizeof(*cmd));
	cmd->tid = GDB_TID_ANY;
	if (len == 0)
		return GDB_CMD_UNSUPPORTED;
	char op = *c.p++;
	enum gdb_cmd_kind k = parse_letter(&c, cmd, op);
	cmd->kind = k;
	return k;
}
