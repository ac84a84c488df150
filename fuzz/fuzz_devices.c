/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the legacy PC devices: the 8250 UART, the CMOS RTC,
 * the i8042 and the ACPI PM and GPE0 blocks, each driven through its bus ops as the
 * bus does (an offset, a width of 1, 2, 4 or 8, and the absolute port in
 * who->addr; a little past the device's ports too, as the unit tests do)
 * with the host's own calls interleaved: UART input, Ctrl+Alt+Del, the
 * power button, a host clock that moves or jumps. Interrupt lines and
 * stop hooks are fakes that record. Each input makes its device afresh.
 * Besides what the sanitizers catch, it checks what the device tests
 * assume, without reads that have side effects unless the input made
 * them:
 *
 *   all      a line is set only when its level changes;
 *   UART     MCR bits 5-7 and IER bits 4-7 read 0; without OUT2 or in
 *            loopback the line is low; a read of IIR says "no interrupt"
 *            exactly when the line was low (given OUT2 and no loopback),
 *            and has bits 4-5 clear; LSR always has THRE and TEMT; MSR
 *            outside loopback reads an idle modem; a write transmits at
 *            most one byte per byte written; host input takes no more
 *            than the room there was;
 *   RTC      register A never shows UIP, D always reads VRT, B never has
 *            SET and UIE together; outside SET every time register is a
 *            valid value in the format B asks for, and the date exists;
 *   i8042    the line is low while the output buffer is empty; a reset
 *            comes exactly from a 0xF0-0xFE pulse command, never a
 *            power-off; at the end the queue holds at most 16 bytes;
 *   ACPI PM  the SCI is high exactly when GPE 0 (the power button) is
 *            both set and enabled; in PM1 only WAK is ever set, in GPE0
 *            only bit 0, and only defined enable bits stick; SCI_EN
 *            reads 1 and SLP_EN 0; power-off comes exactly from SLP_EN
 *            with the S5 type, reset exactly from the reset value.
 *
 * Input: an 8-byte header, then operations.
 *   0     the device: % 4 = UART, RTC, i8042, ACPI PM
 *   1..7  RTC: the host clock, T0 + (int32 in 1..4) seconds, or a wild
 *         one when byte 5 has bit 7; ACPI PM: byte 1 the S5 SLP_TYP (& 7),
 *         byte 2 the reset value, and when byte 3 has bit 0 the event,
 *         control, reset and GPE0 ports at 0x600 + (bytes 4, 5, 6, 7 & 15),
 *         which may overlap
 * An operation is a byte: bits 0-1 kind (0 read, 1 write, 2-3 host),
 * bits 2-3 width (1, 2, 4, 8), bits 4-7 which port; a write is followed
 * by its value (width bytes), a host call by its arguments:
 *   UART: a count byte (& 31) and that many input bytes; RTC: a byte, the
 *   seconds the clock moves on, or with bit 7 set a jump to a wild clock;
 *   i8042: Ctrl+Alt+Del; ACPI PM: the power button.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sparkler/devices.h>
#include <sparkler/log.h>
#include <sparkler/platform.h>

#define HDR     8
#define MAX_OPS 512
#define T0      ((time_t)1709251198) /* 2024-02-29 23:59:58 UTC */

enum { UART, RTC, I8042, PM };

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct in {
	const uint8_t *p;
	size_t left;
};

/* What the fakes saw. */
static struct {
	bool level;
	unsigned redundant;
	unsigned down, reset, other;
	bool writing;      /* inside a UART write */
	unsigned width;    /* of that write */
	unsigned tx_bytes; /* transmitted in it */
	time_t host;       /* the RTC's host clock */
} seen;

static void quiet(enum spk_log_level level, const char *msg, void *opaque)
{
}

static void set_line(void *ctx, uint32_t gsi, bool level)
{
	if (level == seen.level)
		seen.redundant++;
	seen.level = level;
}

static void on_stop(void *ctx, enum spk_exit_kind kind)
{
	if (kind == SPK_EXIT_SYSTEM_DOWN)
		seen.down++;
	else if (kind == SPK_EXIT_RESET)
		seen.reset++;
	else
		seen.other++;
}

static void on_tx(void *ctx, const uint8_t *buf, size_t n)
{
	if (!seen.writing || n == 0)
		abort(); /* output outside a write, or empty */
	seen.tx_bytes += (unsigned)n;
}

static time_t fake_now(void *ctx)
{
	return seen.host;
}

static const time_t wild_clocks[] = {0,
                                     -1,
                                     (time_t)INT64_MIN,
                                     (time_t)INT64_MAX,
                                     (time_t)1 << 40,
                                     (time_t)253402300799 /* 9999-12-31 */};

static uint64_t take(struct in *in, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n && in->left; i++, in->left--)
		v |= (uint64_t)*in->p++ << (8 * i);
	return v;
}

static uint64_t rd(const struct spk_bus_ops *ops, void *dev, uint64_t base, uint64_t off,
                   unsigned width)
{
	const struct spk_bus_access who = {.vcpu = 0, .addr = base + off};
	uint64_t v = ops->read(dev, off, width, &who);

	if (width < 8 && (v >> (8 * width)))
		abort(); /* wider than the access */
	return v;
}

static void wr(const struct spk_bus_ops *ops, void *dev, uint64_t base, uint64_t off,
               unsigned width, uint64_t v)
{
	const struct spk_bus_access who = {.vcpu = 0, .addr = base + off};

	ops->write(dev, off, width, width == 8 ? v : v & ((1ull << (8 * width)) - 1), &who);
}

static const unsigned widths[4] = {1, 2, 4, 8};

/* ---- the UART ------------------------------------------------------------------ */

#define COM1 SPK_PC_COM1

static void uart_check(struct spk_uart *u)
{
	const struct spk_bus_ops *ops = spk_uart_ops();
	uint8_t lcr = (uint8_t)rd(ops, u, COM1, 3, 1), mcr = (uint8_t)rd(ops, u, COM1, 4, 1);

	if ((mcr & 0xe0) || (((mcr & 0x08) == 0 || (mcr & 0x10)) && seen.level) ||
	    spk_uart_rx_room(u) > 16)
		abort();
	if (!(lcr & 0x80) && (rd(ops, u, COM1, 1, 1) & 0xf0))
		abort(); /* IER */
}

static void uart_op(struct spk_uart *u, uint8_t op, struct in *in)
{
	const struct spk_bus_ops *ops = spk_uart_ops();
	unsigned w = widths[(op >> 2) & 3], off = (op >> 4) % 10; /* past the 8 ports too */
	uint8_t mcr = (uint8_t)rd(ops, u, COM1, 4, 1);
	bool level = seen.level, gate = (mcr & 0x08) && !(mcr & 0x10);

	switch (op & 3) {
	case 0: {
		uint64_t v = rd(ops, u, COM1, off, w);
		uint8_t b = (uint8_t)v;

		if (off == 2 && ((b & 0x30) || (gate && level != !(b & 1))))
			abort(); /* IIR */
		if (off == 5 && ((b & 0x60) != 0x60 || (b & 0x80)))
			abort(); /* LSR */
		if (off == 6 && !(mcr & 0x10) && (b & 0xf0) != 0xb0)
			abort(); /* MSR: DCD, DSR, CTS, no ring */
		break;
	}
	case 1:
		seen.writing = true;
		seen.width = w;
		seen.tx_bytes = 0;
		wr(ops, u, COM1, off, w, take(in, w));
		seen.writing = false;
		if (seen.tx_bytes > w)
			abort();
		break;
	default: {
		uint8_t buf[32];
		size_t n = take(in, 1) & 31, room = spk_uart_rx_room(u), got;

		for (size_t i = 0; i < n; i++)
			buf[i] = (uint8_t)take(in, 1);
		got = spk_uart_receive(u, buf, n);
		if (got > n || got > room || spk_uart_rx_room(u) != room - got)
			abort();
		break;
	}
	}
}

static void run_uart(struct in *in)
{
	const struct spk_uart_config cfg = {.name = "com1", .irq = {.set = set_line}, .tx = on_tx};
	struct spk_uart *u;

	if (spk_uart_new(&cfg, &u))
		abort();
	for (unsigned i = 0; i < MAX_OPS && in->left; i++) {
		uart_op(u, (uint8_t)take(in, 1), in);
		uart_check(u);
	}
	spk_uart_free(u);
}

/* ---- the RTC ------------------------------------------------------------------------- */

#define RTC_BASE SPK_PC_RTC

static uint8_t rtc_index; /* the guest's index: write-only, so kept here */

static uint8_t cmos(struct spk_rtc *r, uint8_t idx)
{
	wr(spk_rtc_ops(), r, RTC_BASE, 0, 1, idx);
	return (uint8_t)rd(spk_rtc_ops(), r, RTC_BASE, 1, 1);
}

/* A register's value in format b, or -1 when it is not a number. */
static int num(uint8_t v, uint8_t b)
{
	if (b & 0x04)
		return v;
	return (v >> 4) > 9 || (v & 0xf) > 9 ? -1 : (v >> 4) * 10 + (v & 0xf);
}

static int days_in(int year, int mon)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

	return mon == 2 && leap ? 29 : days[mon - 1];
}

static void rtc_check(struct spk_rtc *r)
{
	uint8_t b = cmos(r, 0x0b);

	if ((cmos(r, 0x0a) & 0x80) || cmos(r, 0x0d) != 0x80 || ((b & 0x80) && (b & 0x10)))
		abort();
	if (!(b & 0x80)) {
		uint8_t hr = cmos(r, 0x04);
		int sec = num(cmos(r, 0x00), b), min = num(cmos(r, 0x02), b);
		int hour = num(b & 0x02 ? hr : hr & 0x7f, b), wday = num(cmos(r, 0x06), b);
		int mday = num(cmos(r, 0x07), b), mon = num(cmos(r, 0x08), b);
		int year = num(cmos(r, 0x09), b), cent = num(cmos(r, 0x32), b);

		if (sec < 0 || sec > 59 || min < 0 || min > 59 || wday < 1 || wday > 7 || mon < 1 ||
		    mon > 12 || year < 0 || year > 99 || cent < 0 || cent > 99 || mday < 1 ||
		    mday > days_in(cent * 100 + year, mon))
			abort();
		if ((b & 0x02) ? (hour < 0 || hour > 23) : (hour < 1 || hour > 12))
			abort();
	}
	wr(spk_rtc_ops(), r, RTC_BASE, 0, 1, rtc_index); /* put the guest's index back */
}

static void rtc_op(struct spk_rtc *r, uint8_t op, struct in *in)
{
	unsigned w = widths[(op >> 2) & 3], off = (op >> 4) % 3;

	switch (op & 3) {
	case 0:
		rd(spk_rtc_ops(), r, RTC_BASE, off, w);
		break;
	case 1: {
		uint64_t v = take(in, w);

		for (unsigned i = 0; i < w; i++)
			if (off + i == 0)
				rtc_index = (uint8_t)(v >> (8 * i)) & 0x7f;
		wr(spk_rtc_ops(), r, RTC_BASE, off, w, v);
		break;
	}
	default: {
		uint8_t s = (uint8_t)take(in, 1);

		if (s & 0x80)
			seen.host =
			    wild_clocks[(s & 0x7f) % (sizeof(wild_clocks) / sizeof(time_t))];
		else if (seen.host <= (time_t)INT64_MAX - s)
			seen.host += s;
		break;
	}
	}
}

static void run_rtc(const uint8_t *hdr, struct in *in)
{
	const struct spk_rtc_config cfg = {.now = fake_now};
	int32_t delta = (int32_t)(hdr[1] | hdr[2] << 8 | hdr[3] << 16 | (uint32_t)hdr[4] << 24);
	struct spk_rtc *r;

	seen.host = hdr[5] & 0x80 ? wild_clocks[hdr[5] % (sizeof(wild_clocks) / sizeof(time_t))]
	                          : T0 + delta;
	rtc_index = 0;
	if (spk_rtc_new(&cfg, &r))
		abort();
	for (unsigned i = 0; i < MAX_OPS && in->left; i++) {
		rtc_op(r, (uint8_t)take(in, 1), in);
		rtc_check(r);
	}
	spk_rtc_free(r);
}

/* ---- the i8042 ------------------------------------------------------------------------ */

static void run_i8042(struct in *in)
{
	const struct spk_i8042_config cfg = {.kbd_irq = {.set = set_line}, .stop = on_stop};
	const struct spk_bus_ops *ops = spk_i8042_ops();
	struct spk_i8042 *k;
	unsigned n;

	if (spk_i8042_new(&cfg, &k))
		abort();
	for (unsigned i = 0; i < MAX_OPS && in->left; i++) {
		uint8_t op = (uint8_t)take(in, 1);
		unsigned w = widths[(op >> 2) & 3], off = (op >> 4) & 3;
		uint64_t port = op & 0x80 ? SPK_PC_I8042_CMD : SPK_PC_I8042_DATA, v;
		unsigned resets = seen.reset;
		bool pulse = false;

		switch (op & 3) {
		case 0:
			rd(ops, k, port, off, w);
			break;
		case 1:
			v = take(in, w);
			for (unsigned b = 0; b < w; b++) {
				uint8_t byte = (uint8_t)(v >> (8 * b));

				pulse |= port + off + b == SPK_PC_I8042_CMD && byte >= 0xf0 &&
				         !(byte & 1);
			}
			wr(ops, k, port, off, w, v);
			break;
		default: {
			int rc = spk_i8042_ctrl_alt_del(k);

			if (rc != 0 && rc != -ENOSPC)
				abort();
			break;
		}
		}
		if (seen.reset != resets + pulse || seen.down || seen.other)
			abort(); /* a reset exactly from a pulse of bit 0 */
		if (!(rd(ops, k, SPK_PC_I8042_CMD, 0, 1) & 0x01) && seen.level)
			abort(); /* the line is up with nothing to read */
	}
	for (n = 0; n < 32 && (rd(ops, k, SPK_PC_I8042_CMD, 0, 1) & 0x01); n++)
		rd(ops, k, SPK_PC_I8042_DATA, 0, 1);
	if (n > 16)
		abort(); /* the queue is 16 bytes */
	spk_i8042_free(k);
}

/* ---- ACPI PM ---------------------------------------------------------------------------- */

struct pm_ports {
	uint16_t evt, cnt, reset, gpe;
	uint8_t s5, reset_value;
};

/* What a byte written at port asks for, as the device decides it (event
 * block first, then control, then GPE0, then reset): 0, 1 power-off, 2 reset. */
static int pm_action(const struct pm_ports *pp, uint64_t port, uint8_t byte)
{
	if (port >= pp->evt && port < pp->evt + 4u)
		return 0;
	if (port >= pp->cnt && port < pp->cnt + 2u)
		return port == pp->cnt + 1u && (byte & 0x20) && ((byte >> 2) & 7) == pp->s5 ? 1 : 0;
	if (port >= pp->gpe && port < pp->gpe + 4u)
		return 0;
	return port == pp->reset && byte == pp->reset_value ? 2 : 0;
}

static bool overlap(uint16_t a, unsigned alen, uint16_t b, unsigned blen)
{
	return a < b + blen && b < a + alen;
}

static void pm_check(struct spk_acpi_pm *p, const struct pm_ports *pp)
{
	const struct spk_bus_ops *ops = spk_acpi_pm_ops();
	uint16_t sts = (uint16_t)rd(ops, p, pp->evt, 0, 2),
	         en = (uint16_t)rd(ops, p, pp->evt, 2, 2);

	if ((sts & ~0x8000) || (en & ~0x4721))
		abort(); /* PM1 sets only WAK, which has no enable: it never raises the SCI */
	/* GPE0 reads as itself unless the event or control block comes first */
	if (!overlap(pp->gpe, 4, pp->evt, 4) && !overlap(pp->gpe, 4, pp->cnt, 2)) {
		uint16_t gsts = (uint16_t)rd(ops, p, pp->gpe, 0, 2),
		         gen = (uint16_t)rd(ops, p, pp->gpe, 2, 2);

		/* GPE 0 (the power button) and GPE 1 (the VM generation ID, raised
		 * only by the monitor, never here) can be enabled; only the button
		 * sets a status bit here */
		if (seen.level != ((gsts & gen & 3) != 0) || (gsts & ~1) || (gen & ~3))
			abort();
	}
	if (!overlap(pp->evt, 4, pp->cnt, 2) && !overlap(pp->reset, 1, pp->cnt, 2)) {
		uint16_t cnt = (uint16_t)rd(ops, p, pp->cnt, 0, 2);

		if ((cnt & 0x2001) != 1 || (cnt & ~0x1c03))
			abort();
	}
}

static void run_pm(const uint8_t *hdr, struct in *in)
{
	struct pm_ports pp = {SPK_PC_PM1A_EVT, SPK_PC_PM1A_CNT, SPK_PC_RESET_PORT,
	                      SPK_PC_GPE0_BLK, hdr[1] & 7,      hdr[2]};
	const struct spk_acpi_pm_config cfg = {.s5_slp_typ = pp.s5,
	                                       .reset_value = pp.reset_value,
	                                       .stop = on_stop,
	                                       .sci = {.set = set_line}};
	const struct spk_bus_ops *ops = spk_acpi_pm_ops();
	struct spk_acpi_pm *p;

	if (spk_acpi_pm_new(&cfg, &p))
		abort();
	if (hdr[3] & 1) {
		pp.evt = 0x600 + (hdr[4] & 15);
		pp.cnt = 0x600 + (hdr[5] & 15);
		pp.reset = 0x600 + (hdr[6] & 15);
		pp.gpe = 0x600 + (hdr[7] & 15);
		spk_acpi_pm_set_ports(p, pp.evt, pp.cnt, pp.gpe, pp.reset);
	}
	for (unsigned i = 0; i < MAX_OPS && in->left; i++) {
		uint8_t op = (uint8_t)take(in, 1);
		/* ports past the blocks: reset + 1-3 (off is 0-3) */
		const uint16_t bases[4] = {pp.evt, pp.cnt, pp.reset, pp.gpe};
		unsigned w = widths[(op >> 2) & 3], off = (op >> 4) & 3;
		uint64_t port = bases[op >> 6], v;
		unsigned down = seen.down, reset = seen.reset;
		int want = 0;

		switch (op & 3) {
		case 0:
			rd(ops, p, port, off, w);
			break;
		case 1:
			v = take(in, w);
			for (unsigned b = 0; b < w; b++) {
				int a = pm_action(&pp, port + off + b, (uint8_t)(v >> (8 * b)));

				if (a)
					want = a;
			}
			wr(ops, p, port, off, w, v);
			break;
		default:
			spk_acpi_pm_power_button(p);
			break;
		}
		if (seen.down != down + (want == 1) || seen.reset != reset + (want == 2) ||
		    seen.other)
			abort(); /* power-off and reset exactly when asked */
		pm_check(p, &pp);
	}
	spk_acpi_pm_free(p);
}

/* ---- the target ----------------------------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	spk_log_set(quiet, NULL, SPK_LOG_DEBUG); /* format every line, show none */
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in;

	if (size < HDR)
		return 0;
	in = (struct in){.p = data + HDR, .left = size - HDR};
	memset(&seen, 0, sizeof(seen));
	switch (data[0] % 4) {
	case UART:
		run_uart(&in);
		break;
	case RTC:
		run_rtc(data, &in);
		break;
	case I8042:
		run_i8042(&in);
		break;
	default:
		run_pm(data, &in);
		break;
	}
	if (seen.redundant)
		abort(); /* a device set its line to the level it had */
	return 0;
}
