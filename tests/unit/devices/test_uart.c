// SPDX-License-Identifier: Apache-2.0
/* The 16550A UART: Linux's probe, transmit, receive, interrupts, hostile input. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "devtest.h"

#define BASE 0x3f8

enum { RBR = 0, THR = 0, DLL = 0, IER = 1, DLM = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4 };
enum { LSR = 5, MSR = 6, SCR = 7 };

struct env {
	struct spk_uart *u;
	struct fake_irq irq;
	uint8_t tx[4096];
	size_t ntx;
	unsigned tx_calls;
};

static void tx_fn(void *ctx, const uint8_t *buf, size_t n)
{
	struct env *e = ctx;

	e->tx_calls++;
	for (size_t i = 0; i < n && e->ntx < sizeof(e->tx); i++)
		e->tx[e->ntx++] = buf[i];
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	struct spk_uart_config cfg = {
	    .name = "com1", .irq = fake_line(&e->irq, 4), .tx = tx_fn, .tx_ctx = e};

	assert_non_null(e);
	assert_int_equal(spk_uart_new(&cfg, &e->u), 0);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	log_capture_stop();
	assert_int_equal(e->irq.redundant, 0); /* set() only on a change */
	spk_uart_free(e->u);
	free(e);
	return 0;
}

static uint8_t in(struct env *e, unsigned reg)
{
	return (uint8_t)dev_rd(spk_uart_ops(), e->u, BASE, reg, 1);
}

static void out(struct env *e, unsigned reg, uint8_t v)
{
	dev_wr(spk_uart_ops(), e->u, BASE, reg, 1, v);
}

/* ---- Linux's autoconfig(), autoconfig_16550a() and size_fifo() ---- */

static unsigned size_fifo(struct env *e)
{
	uint8_t old_lcr = in(e, LCR), old_mcr, old_fcr;
	unsigned count;

	out(e, LCR, 0);
	old_fcr = in(e, IIR);
	old_mcr = in(e, MCR);
	out(e, FCR, 0x07);
	out(e, MCR, 0x10); /* loopback */
	out(e, LCR, 0x80);
	out(e, DLL, 1);
	out(e, DLM, 0);
	out(e, LCR, 0x03);
	for (count = 0; count < 256; count++)
		out(e, THR, (uint8_t)count);
	for (count = 0; (in(e, LSR) & 0x01) && count < 256; count++)
		in(e, RBR);
	out(e, FCR, old_fcr);
	out(e, MCR, old_mcr);
	out(e, LCR, old_lcr);
	return count;
}

/* Returns the port type Linux would settle on: 0 none, 1 8250, 2 16550,
 * 3 16550A, 4 other (an EFR/16750/XScale/U6 detection). */
static int linux_autoconfig(struct env *e)
{
	uint8_t scratch, scratch2, scratch3, save_mcr, save_lcr, status1, status2, iersave;

	scratch = in(e, IER);
	out(e, IER, 0);
	scratch2 = in(e, IER) & 0x0f;
	out(e, IER, 0x0f);
	scratch3 = in(e, IER) & 0x0f;
	out(e, IER, scratch);
	if (scratch2 != 0 || scratch3 != 0x0f)
		return 0;

	save_mcr = in(e, MCR);
	save_lcr = in(e, LCR);
	out(e, MCR, 0x10 | 0x0a);
	status1 = in(e, MSR) & 0xf0;
	out(e, MCR, save_mcr);
	if (status1 != 0x90)
		return 0;

	out(e, LCR, 0xbf);
	out(e, IIR, 0); /* EFR */
	out(e, LCR, 0);
	out(e, FCR, 0x01);
	switch (in(e, IIR) >> 6) {
	case 0:
		return 1;
	case 2:
		return 2;
	case 1:
		return 4;
	}
	/* autoconfig_16550a: no EFR with DLAB set nor with LCR 0xbf */
	out(e, LCR, 0x80);
	if (in(e, IIR) == 0)
		return 4;
	out(e, LCR, 0xbf);
	if (in(e, IIR) == 0)
		return 4;
	/* not a National Semiconductor SuperIO */
	out(e, LCR, 0);
	status1 = in(e, MCR);
	out(e, LCR, 0xe0);
	status2 = in(e, 0x02);
	if (!((status2 ^ status1) & 0x10)) {
		out(e, LCR, 0);
		out(e, MCR, status1 ^ 0x10);
		out(e, LCR, 0xe0);
		status2 = in(e, 0x02);
		out(e, LCR, 0);
		out(e, MCR, status1);
		if ((status2 ^ status1) & 0x10)
			return 4;
	}
	/* not a 16750 */
	out(e, LCR, 0);
	out(e, FCR, 0x01 | 0x20);
	status1 = in(e, IIR) >> 5;
	out(e, FCR, 0x01);
	out(e, LCR, 0x80);
	out(e, FCR, 0x01 | 0x20);
	status2 = in(e, IIR) >> 5;
	out(e, FCR, 0x01);
	out(e, LCR, 0);
	if (status1 == 6 && status2 == 7)
		return 4;
	/* not an XScale */
	iersave = in(e, IER);
	out(e, IER, iersave & ~0x40);
	if (!(in(e, IER) & 0x40)) {
		out(e, IER, iersave | 0x40);
		if (in(e, IER) & 0x40)
			return 4;
	}
	out(e, IER, iersave);
	if (size_fifo(e) == 64)
		return 4;
	out(e, LCR, save_lcr);
	/* reset */
	out(e, MCR, save_mcr);
	out(e, FCR, 0x07);
	out(e, FCR, 0);
	in(e, RBR);
	out(e, IER, 0);
	return 3;
}

static void test_autoconfig(void **state)
{
	struct env *e = *state;

	assert_int_equal(linux_autoconfig(e), 3);
	assert_int_equal(size_fifo(e), 16);
	/* the loopback bytes never reached the host */
	assert_int_equal(e->ntx, 0);
	assert_false(e->irq.level);
}

static void test_scratch_and_divisor(void **state)
{
	struct env *e = *state;

	out(e, SCR, 0xa5);
	assert_int_equal(in(e, SCR), 0xa5);
	out(e, SCR, 0x5a);
	assert_int_equal(in(e, SCR), 0x5a);

	out(e, IER, 0x05);
	out(e, LCR, 0x83); /* DLAB, 8 bits */
	out(e, DLL, 0x01);
	out(e, DLM, 0x02);
	assert_int_equal(in(e, DLL), 0x01);
	assert_int_equal(in(e, DLM), 0x02);
	out(e, LCR, 0x03);
	assert_int_equal(in(e, LCR), 0x03);
	/* IER and the data register are back */
	assert_int_equal(in(e, IER), 0x05);
	out(e, LCR, 0x80);
	assert_int_equal(in(e, DLL), 0x01);
}

static void test_fifo_identification(void **state)
{
	struct env *e = *state;

	assert_int_equal(in(e, IIR), 0x01); /* 8250 mode at reset */
	out(e, FCR, 0xc1);
	assert_int_equal(in(e, IIR) & 0xc0, 0xc0); /* 16550A */
	assert_int_equal(in(e, IIR), 0xc1);
	out(e, FCR, 0x00);
	assert_int_equal(in(e, IIR), 0x01);
}

static void test_loopback_msr(void **state)
{
	struct env *e = *state;

	assert_int_equal(in(e, MSR) & 0xf0, 0xb0); /* DCD, DSR, CTS */
	out(e, MCR, 0x10);
	assert_int_equal(in(e, MSR) & 0xf0, 0x00);
	out(e, MCR, 0x10 | 0x01); /* DTR -> DSR */
	assert_int_equal(in(e, MSR), 0x20 | 0x02);
	out(e, MCR, 0x10 | 0x02); /* RTS -> CTS */
	assert_int_equal(in(e, MSR), 0x10 | 0x01 | 0x02);
	out(e, MCR, 0x10 | 0x04);                  /* OUT1 -> RI; CTS falls */
	assert_int_equal(in(e, MSR), 0x40 | 0x01); /* a rising RI is no TERI */
	out(e, MCR, 0x10);                         /* RI falls: trailing edge */
	assert_int_equal(in(e, MSR), 0x04);
	out(e, MCR, 0x10 | 0x08); /* OUT2 -> DCD */
	assert_int_equal(in(e, MSR), 0x80 | 0x08);
	out(e, MCR, 0x10 | 0x0a);
	assert_int_equal(in(e, MSR) & 0xf0, 0x90);
	/* loopback: bytes come back, not out */
	out(e, FCR, 0x01);
	out(e, THR, 'x');
	assert_int_equal(in(e, LSR) & 0x01, 0x01);
	assert_int_equal(in(e, RBR), 'x');
	assert_int_equal(e->ntx, 0);
	assert_int_equal(spk_uart_rx_room(e->u), 0); /* the host is cut off */
	assert_int_equal(spk_uart_receive(e->u, (const uint8_t *)"a", 1), 0);
	out(e, MCR, 0x00);
	assert_int_equal(in(e, MSR) & 0xf0, 0xb0);
}

static void test_transmit(void **state)
{
	struct env *e = *state;
	const char *msg = "Linux version 6.1\r\n";

	out(e, LCR, 0x03);
	for (const char *p = msg; *p; p++) {
		assert_int_equal(in(e, LSR) & 0x60, 0x60); /* THRE, TEMT */
		out(e, THR, (uint8_t)*p);
	}
	assert_int_equal(e->ntx, strlen(msg));
	assert_memory_equal(e->tx, msg, strlen(msg));
	/* with DLAB set, offset 0 is the divisor, not the THR */
	out(e, LCR, 0x83);
	out(e, THR, 'z');
	assert_int_equal(e->ntx, strlen(msg));
}

static void test_receive_fifo(void **state)
{
	struct env *e = *state;
	uint8_t buf[20];

	for (unsigned i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)('a' + i);
	/* 8250 mode: one byte */
	assert_int_equal(spk_uart_rx_room(e->u), 1);
	assert_int_equal(spk_uart_receive(e->u, buf, 2), 1);
	assert_int_equal(spk_uart_receive(e->u, buf, 2), 0);
	assert_int_equal(in(e, RBR), 'a');
	/* FIFO on: sixteen, the rest refused (no overrun: the host waits) */
	out(e, FCR, 0x07);
	assert_int_equal(spk_uart_rx_room(e->u), 16);
	assert_int_equal(spk_uart_receive(e->u, buf, 10), 10);
	assert_int_equal(spk_uart_receive(e->u, buf + 10, 10), 6);
	assert_int_equal(spk_uart_rx_room(e->u), 0);
	assert_int_equal(spk_uart_receive(e->u, buf, 1), 0);
	for (unsigned i = 0; i < 16; i++) {
		assert_int_equal(in(e, LSR) & 0x03, 0x01); /* DR, no overrun */
		assert_int_equal(in(e, RBR), buf[i]);
	}
	assert_int_equal(in(e, LSR) & 0x01, 0);
	assert_int_equal(spk_uart_rx_room(e->u), 16);
	/* FCR clear empties the FIFO */
	assert_int_equal(spk_uart_receive(e->u, buf, 3), 3);
	out(e, FCR, 0x03);
	assert_int_equal(in(e, LSR) & 0x01, 0);
	/* loopback overflow sets OE */
	out(e, MCR, 0x10);
	for (unsigned i = 0; i < 17; i++)
		out(e, THR, (uint8_t)i);
	assert_int_equal(in(e, LSR) & 0x03, 0x03);
	assert_int_equal(in(e, LSR) & 0x02, 0); /* read clears OE */
	assert_int_equal(in(e, RBR), 0);
}

static void test_rx_interrupt(void **state)
{
	struct env *e = *state;

	out(e, FCR, 0xc1); /* trigger at 14 */
	out(e, IER, 0x01);
	assert_false(e->irq.level);
	assert_int_equal(spk_uart_receive(e->u, (const uint8_t *)"k", 1), 1);
	assert_false(e->irq.level);         /* OUT2 clear: the line is gated */
	assert_int_equal(in(e, IIR), 0xcc); /* timeout: below the trigger */
	out(e, MCR, 0x0b);                  /* DTR, RTS, OUT2 */
	assert_true(e->irq.level);
	assert_int_equal(e->irq.gsi, 4);
	assert_int_equal(in(e, RBR), 'k');
	assert_false(e->irq.level);
	assert_int_equal(in(e, IIR), 0xc1);
	/* at the trigger level: RX data available */
	for (unsigned i = 0; i < 14; i++)
		assert_int_equal(spk_uart_receive(e->u, (const uint8_t *)"z", 1), 1);
	assert_true(e->irq.level);
	assert_int_equal(in(e, IIR), 0xc4);
	in(e, RBR);
	assert_int_equal(in(e, IIR), 0xcc);
	while (in(e, LSR) & 0x01)
		in(e, RBR);
	assert_false(e->irq.level);
	/* disabling RDI drops the line */
	spk_uart_receive(e->u, (const uint8_t *)"q", 1);
	assert_true(e->irq.level);
	out(e, IER, 0x00);
	assert_false(e->irq.level);
	assert_int_equal(in(e, IIR), 0xc1);
	/* and OUT2 gates it too */
	out(e, IER, 0x01);
	assert_true(e->irq.level);
	out(e, MCR, 0x03);
	assert_false(e->irq.level);
	out(e, MCR, 0x0b);
	assert_true(e->irq.level);
}

static void test_thre_interrupt(void **state)
{
	struct env *e = *state;
	unsigned rises;

	out(e, MCR, 0x08);
	out(e, FCR, 0x01);
	assert_false(e->irq.level);
	/* Linux's startup test: THRI set while THR is empty fires at once */
	out(e, IER, 0x02);
	assert_true(e->irq.level);
	assert_int_equal(in(e, LSR) & 0x40, 0x40);
	assert_int_equal(in(e, IIR), 0xc2);
	/* reading IIR acknowledged it */
	assert_false(e->irq.level);
	assert_int_equal(in(e, IIR), 0xc1);
	/* toggling IER.THRI re-raises it (no UART_BUG_THRE) */
	out(e, IER, 0x00);
	out(e, IER, 0x02);
	assert_int_equal(in(e, IIR), 0xc2);
	/* each byte leaving the THR is a new edge */
	rises = e->irq.rises;
	out(e, THR, 'a');
	assert_true(e->irq.level);
	assert_int_equal(e->irq.rises, rises + 1);
	out(e, THR, 'b');
	assert_int_equal(e->irq.rises, rises + 2);
	/* writing THR is also an acknowledgement: the line fell in between */
	assert_int_equal(e->irq.falls, e->irq.rises - 1);
	/* stop_tx */
	out(e, IER, 0x00);
	assert_false(e->irq.level);
	assert_int_equal(in(e, IIR), 0xc1);
	/* a THRE that was never acknowledged survives IER changes of other bits */
	out(e, IER, 0x02);
	out(e, IER, 0x03);
	assert_int_equal(in(e, IIR), 0xc2);
	/* OUT2 gating */
	out(e, IER, 0x00);
	out(e, MCR, 0x00);
	out(e, IER, 0x02);
	assert_false(e->irq.level);
	out(e, MCR, 0x08);
	assert_true(e->irq.level);
	/* loopback forces OUT2 inactive */
	out(e, MCR, 0x18);
	assert_false(e->irq.level);
	assert_int_equal(memcmp(e->tx, "ab", 2), 0);
}

static void test_iir_priority(void **state)
{
	struct env *e = *state;

	out(e, FCR, 0x01);
	out(e, MCR, 0x10); /* loopback, to make an overrun and modem deltas */
	in(e, MSR);        /* forget the deltas of entering loopback */
	for (unsigned i = 0; i < 17; i++)
		out(e, THR, 'x');
	out(e, MCR, 0x11); /* DTR -> DSR changes: DDSR */
	out(e, IER, 0x0f);
	assert_int_equal(in(e, IIR), 0xc6); /* line status */
	in(e, LSR);
	assert_int_equal(in(e, IIR), 0xc4); /* 16 >= trigger 1: RX data */
	while (in(e, LSR) & 0x01)
		in(e, RBR);
	assert_int_equal(in(e, IIR), 0xc2); /* THRE */
	assert_int_equal(in(e, IIR), 0xc0); /* modem status */
	assert_int_equal(in(e, MSR) & 0x0f, 0x02);
	assert_int_equal(in(e, IIR), 0xc1);
	/* in 8250 mode there are no FIFO bits and no timeout */
	out(e, FCR, 0x00);
	out(e, MCR, 0x00);
	spk_uart_receive(e->u, (const uint8_t *)"y", 1);
	assert_int_equal(in(e, IIR), 0x04);
}

static void test_wide_access(void **state)
{
	struct env *e = *state;

	/* a word write at offset 3 writes LCR and MCR */
	dev_wr(spk_uart_ops(), e->u, BASE, 3, 2, 0x0b03);
	assert_int_equal(in(e, LCR), 0x03);
	assert_int_equal(in(e, MCR), 0x0b);
	assert_int_equal(dev_rd(spk_uart_ops(), e->u, BASE, 3, 2), 0x0b03);
	/* an offset that would wrap around to register 0 touches nothing */
	assert_int_equal(dev_rd(spk_uart_ops(), e->u, 0, UINT64_MAX, 2), 0xffff);
	dev_wr(spk_uart_ops(), e->u, 0, UINT64_MAX, 2, 0x7878);
	assert_int_equal(e->ntx, 0);
	/* bytes past the eighth port read as nothing there */
	assert_int_equal(dev_rd(spk_uart_ops(), e->u, BASE, 7, 2) >> 8, 0xff);
}

/* Every register, every width, random values: no crash, sane state. */
static void test_hostile(void **state)
{
	struct env *e = *state;
	struct log_capture logs;
	uint64_t seed = 0x8250;

	log_capture_start(&logs);
	for (unsigned n = 0; n < HOSTILE_ITERATIONS; n++) {
		unsigned width = prng_width(&seed);
		uint64_t off = prng_next(&seed) % 10; /* a little past the end too */
		uint8_t mcr, iir;

		switch (prng_next(&seed) % 4) {
		case 0:
			dev_rd(spk_uart_ops(), e->u, BASE, off, width);
			break;
		case 1: {
			uint8_t b = (uint8_t)prng_next(&seed);

			spk_uart_receive(e->u, &b, 1);
			break;
		}
		default:
			dev_wr(spk_uart_ops(), e->u, BASE, off, width, prng_value(&seed, width));
			break;
		}
		assert_true(spk_uart_rx_room(e->u) <= 16);
		mcr = in(e, MCR);
		assert_int_equal(mcr & 0xe0, 0);
		if (!(mcr & 0x08) || (mcr & 0x10))
			assert_false(e->irq.level);
		iir = in(e, IIR);
		assert_int_equal(iir & 0x30, 0);
		if (iir & 0x01)
			assert_false(e->irq.level);
		else if ((iir & 0x0f) != 0x02 && (mcr & 0x08) && !(mcr & 0x10))
			assert_true(e->irq.level);
		assert_int_equal(in(e, LSR) & 0x60, 0x60);
	}
	/* bad values were logged, but not thousands of times */
	assert_true(logs.lines <= SPK_DEV_LOG_BURST + 1);
	log_capture_stop();
	/* the device still works: a fresh probe finds a 16550A */
	out(e, LCR, 0x03);
	out(e, MCR, 0x00);
	out(e, IER, 0x00);
	assert_int_equal(linux_autoconfig(e), 3);
	e->ntx = 0;
	out(e, THR, 'k');
	assert_int_equal(e->ntx, 1);
}

/* The host feeds the FIFO from its own thread while a vCPU drains it. */
#define STREAM 200000

static void *producer(void *arg)
{
	struct env *e = arg;

	for (unsigned i = 0; i < STREAM;) {
		uint8_t b = (uint8_t)i;

		if (spk_uart_receive(e->u, &b, 1) == 1)
			i++;
		else
			sched_yield();
	}
	return NULL;
}

static void test_concurrent_receive(void **state)
{
	struct env *e = *state;
	pthread_t t;
	unsigned got = 0;

	out(e, FCR, 0x07);
	out(e, IER, 0x01);
	out(e, MCR, 0x08);
	assert_int_equal(pthread_create(&t, NULL, producer, e), 0);
	while (got < STREAM) {
		if (!(in(e, LSR) & 0x01)) {
			sched_yield();
			continue;
		}
		assert_int_equal(in(e, RBR), (uint8_t)got);
		got++;
	}
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(in(e, LSR) & 0x03, 0); /* drained, never overrun */
	assert_false(e->irq.level);
}

static void test_config_errors(void **state)
{
	struct spk_uart *u = (void *)1;
	struct spk_uart_config cfg = {.name = NULL};

	assert_int_equal(spk_uart_new(NULL, &u), -EINVAL);
	assert_null(u);
	assert_int_equal(spk_uart_new(&cfg, NULL), -EINVAL);
	/* no name, no irq, no tx: still a working UART */
	assert_int_equal(spk_uart_new(&cfg, &u), 0);
	dev_wr(spk_uart_ops(), u, BASE, THR, 1, 'x');
	dev_wr(spk_uart_ops(), u, BASE, IER, 1, 0x0f);
	assert_int_equal(spk_uart_receive(u, NULL, 3), 0);
	assert_int_equal(spk_uart_receive(NULL, (const uint8_t *)"x", 1), 0);
	assert_int_equal(spk_uart_rx_room(NULL), 0);
	spk_uart_free(u);
	spk_uart_free(NULL);
}

/* The same UART on the MMIO bus, as the arm64 machine has it: a 4 KiB
 * page at 0x09000000 whose first 8 bytes are the registers (reg-shift 0,
 * byte accesses: Linux's of_serial and earlycon "ns16550a"); the rest of
 * the page reads 0xff and ignores writes, and an access crossing the
 * page's end is a miss. */
static void test_on_mmio_bus(void **state)
{
	struct env *e = *state;
	struct spk_bus *bus;
	struct spk_bus_access who = {.vcpu = 0};
	const uint64_t base = 0x09000000;
	uint64_t v;

	assert_int_equal(spk_bus_new(&bus), 0);
	assert_int_equal(spk_bus_register(bus, SPK_BUS_MMIO, base, 0x1000, "uart", spk_uart_ops(),
	                                  e->u, SPK_BUS_LOCKLESS),
	                 0);
	spk_bus_freeze(bus);
	who.addr = base + LCR;
	assert_int_equal(spk_bus_write(bus, SPK_BUS_MMIO, base + LCR, 1, 0x03, &who), 0);
	who.addr = base;
	assert_int_equal(spk_bus_write(bus, SPK_BUS_MMIO, base, 1, 'A', &who), 0);
	assert_int_equal(e->ntx, 1);
	assert_int_equal(e->tx[0], 'A');
	assert_int_equal(spk_bus_read(bus, SPK_BUS_MMIO, base + LSR, 1, &v, &who), 0);
	assert_int_equal(v & 0x60, 0x60);
	/* the scratch register keeps what was written */
	assert_int_equal(spk_bus_write(bus, SPK_BUS_MMIO, base + SCR, 1, 0x5a, &who), 0);
	assert_int_equal(spk_bus_read(bus, SPK_BUS_MMIO, base + SCR, 1, &v, &who), 0);
	assert_int_equal(v, 0x5a);
	/* past the registers */
	assert_int_equal(spk_bus_read(bus, SPK_BUS_MMIO, base + 0x800, 4, &v, &who), 0);
	assert_int_equal(v, 0xffffffff);
	assert_int_equal(spk_bus_write(bus, SPK_BUS_MMIO, base + 0xfff, 1, 0, &who), 0);
	assert_int_equal(e->ntx, 1);
	assert_int_equal(spk_bus_read(bus, SPK_BUS_MMIO, base + 0xffe, 4, &v, &who), -ENOENT);
	/* received bytes come out of the RBR at offset 0 */
	assert_int_equal(spk_uart_receive(e->u, (const uint8_t *)"x", 1), 1);
	assert_int_equal(spk_bus_read(bus, SPK_BUS_MMIO, base, 1, &v, &who), 0);
	assert_int_equal(v, 'x');
	spk_bus_free(bus);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_autoconfig, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scratch_and_divisor, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fifo_identification, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_loopback_msr, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_transmit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_receive_fifo, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rx_interrupt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_thre_interrupt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_iir_priority, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wide_access, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_receive, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_on_mmio_bus, setup, teardown),
	    cmocka_unit_test(test_config_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
