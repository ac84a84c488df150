// SPDX-License-Identifier: Apache-2.0
/*
 * A 16550A UART as Linux's 8250 driver probes and drives it.
 *
 * Transmission is instantaneous: the THR is empty again by the time the
 * write returns, so LSR.THRE and LSR.TEMT always read 1 and there is no
 * transmit FIFO to model. The receive side has the real 16-byte FIFO (one
 * byte with FIFOs off) fed by the host (spk_uart_receive) or, in loopback,
 * by the transmitter.
 *
 * Interrupts follow the datasheet priorities. The THRE interrupt is the
 * subtle one: it is an event, not a level. It is raised when IER.THRI goes
 * from 0 to 1 while the THR is empty and each time a written byte leaves
 * the THR; reading IIR while it is the reported cause, or writing THR,
 * clears it. Linux's startup THRE test and its transmit loop depend on
 * exactly that.
 *
 * The output line is "an interrupt is pending && MCR.OUT2", as on a PC
 * where OUT2 gates the UART's INTR pin onto the ISA bus. In loopback the
 * chip forces its modem outputs inactive, OUT2 included, so the line stays
 * low. Each change of the line goes to the irqchip (level semantics: KVM
 * makes the rising edge an ISA interrupt), so every new cause after the
 * guest has seen the line fall yields a new edge.
 *
 * Accesses wider than a byte are split into byte accesses at consecutive
 * ports, as the ISA bus does; bytes past the 8 ports read 0xff.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sparkler/devices.h>
#include <sparkler/snapshot.h>

#include "core/internal.h"
#include "devices/devlog.h"

#define UART_PORTS 8
#define UART_FIFO  16

/* register offsets */
enum {
	REG_RBR_THR = 0, /* DLL with DLAB */
	REG_IER = 1,     /* DLM with DLAB */
	REG_IIR_FCR = 2,
	REG_LCR = 3,
	REG_MCR = 4,
	REG_LSR = 5,
	REG_MSR = 6,
	REG_SCR = 7,
};

#define IER_RDI   0x01
#define IER_THRI  0x02
#define IER_RLSI  0x04
#define IER_MSI   0x08
#define IER_VALID 0x0f /* a 16550A has no bits 4-7 (Linux's UUE probe) */

#define IIR_NO_INT     0x01
#define IIR_MSI        0x00
#define IIR_THRI       0x02
#define IIR_RDI        0x04
#define IIR_RLSI       0x06
#define IIR_RX_TIMEOUT 0x0c
#define IIR_FIFO_BITS  0xc0

#define FCR_ENABLE    0x01
#define FCR_CLEAR_RX  0x02
#define FCR_CLEAR_TX  0x04
#define FCR_TRIG_MASK 0xc0
/* What a 16550A keeps: enable, DMA mode, trigger. Bit 5 (64-byte FIFO)
 * is a 16750 feature and must not stick, or Linux probes a 16750. */
#define FCR_KEPT 0xc9

#define LCR_DLAB 0x80

#define MCR_DTR   0x01
#define MCR_RTS   0x02
#define MCR_OUT1  0x04
#define MCR_OUT2  0x08
#define MCR_LOOP  0x10
#define MCR_VALID 0x1f

#define LSR_DR     0x01
#define LSR_OE     0x02
#define LSR_PE     0x04
#define LSR_FE     0x08
#define LSR_BI     0x10
#define LSR_THRE   0x20
#define LSR_TEMT   0x40
#define LSR_ERRORS (LSR_OE | LSR_PE | LSR_FE | LSR_BI)

#define MSR_DCTS  0x01
#define MSR_DDSR  0x02
#define MSR_TERI  0x04
#define MSR_DDCD  0x08
#define MSR_CTS   0x10
#define MSR_DSR   0x20
#define MSR_RI    0x40
#define MSR_DCD   0x80
#define MSR_DELTA 0x0f
/* Not in loopback: a terminal is attached and ready, no ring. */
#define MSR_IDLE (MSR_DCD | MSR_DSR | MSR_CTS)

struct spk_uart {
	pthread_mutex_t lock;
	char name[32];
	struct spk_irq_line irq;
	void (*tx)(void *ctx, const uint8_t *buf, size_t n);
	void *tx_ctx;

	uint8_t rx[UART_FIFO]; /* ring */
	unsigned rx_head, rx_count;

	uint8_t ier, lcr, mcr, fcr, scr, dll, dlm;
	uint8_t lsr_errors; /* the sticky LSR error bits, cleared by reading LSR */
	uint8_t msr;        /* status (high nibble) and delta bits */
	bool thr_ipending;  /* the THRE interrupt event, see the top comment */
	bool irq_level;     /* what the line was last set to */

	struct spk_dev_ratelimit rl;
};

/* Bytes one access transmits: at most one THR write per byte of width. */
struct tx_batch {
	uint8_t buf[8];
	size_t n;
};

static bool fifo_on(const struct spk_uart *u)
{
	return u->fcr & FCR_ENABLE;
}

static bool loopback(const struct spk_uart *u)
{
	return u->mcr & MCR_LOOP;
}

/* Receive capacity: the FIFO, or the lone RBR of an 8250-mode chip. */
static unsigned rx_capacity(const struct spk_uart *u)
{
	return fifo_on(u) ? UART_FIFO : 1;
}

static unsigned rx_trigger(const struct spk_uart *u)
{
	static const unsigned levels[4] = {1, 4, 8, 14};

	return levels[(u->fcr & FCR_TRIG_MASK) >> 6];
}

static void rx_clear(struct spk_uart *u)
{
	u->rx_head = 0;
	u->rx_count = 0;
}

/* Queue one byte; false (and the overrun flag) when full. */
static bool rx_push(struct spk_uart *u, uint8_t byte)
{
	if (u->rx_count >= rx_capacity(u)) {
		u->lsr_errors |= LSR_OE;
		return false;
	}
	u->rx[(u->rx_head + u->rx_count) % UART_FIFO] = byte;
	u->rx_count++;
	return true;
}

static uint8_t rx_pop(struct spk_uart *u)
{
	uint8_t byte;

	if (!u->rx_count)
		return 0;
	byte = u->rx[u->rx_head];
	u->rx_head = (u->rx_head + 1) % UART_FIFO;
	u->rx_count--;
	return byte;
}

/* The interrupt identification, highest priority first. */
static uint8_t iir_id(const struct spk_uart *u)
{
	if ((u->ier & IER_RLSI) && (u->lsr_errors & LSR_ERRORS))
		return IIR_RLSI;
	if ((u->ier & IER_RDI) && u->rx_count) {
		/* Below the trigger level a real chip reports a character
		 * timeout after four character times; we have no clock, so
		 * report it at once: the guest drains the FIFO either way. */
		if (fifo_on(u) && u->rx_count < rx_trigger(u))
			return IIR_RX_TIMEOUT;
		return IIR_RDI;
	}
	if ((u->ier & IER_THRI) && u->thr_ipending)
		return IIR_THRI;
	if ((u->ier & IER_MSI) && (u->msr & MSR_DELTA))
		return IIR_MSI;
	return IIR_NO_INT;
}

static void update_irq(struct spk_uart *u)
{
	bool level = iir_id(u) != IIR_NO_INT && (u->mcr & MCR_OUT2) && !loopback(u);

	if (level == u->irq_level)
		return;
	u->irq_level = level;
	spk_irq_set(&u->irq, level);
}

/* The modem status inputs: wired to MCR in loopback, idle otherwise. */
static uint8_t msr_inputs(uint8_t mcr)
{
	uint8_t s = 0;

	if (!(mcr & MCR_LOOP))
		return MSR_IDLE;
	if (mcr & MCR_RTS)
		s |= MSR_CTS;
	if (mcr & MCR_DTR)
		s |= MSR_DSR;
	if (mcr & MCR_OUT1)
		s |= MSR_RI;
	if (mcr & MCR_OUT2)
		s |= MSR_DCD;
	return s;
}

static void write_mcr(struct spk_uart *u, uint8_t value)
{
	uint8_t old = u->msr & ~MSR_DELTA;
	uint8_t now, changed;

	u->mcr = value & MCR_VALID;
	now = msr_inputs(u->mcr);
	changed = old ^ now;
	if (changed & MSR_CTS)
		u->msr |= MSR_DCTS;
	if (changed & MSR_DSR)
		u->msr |= MSR_DDSR;
	if ((old & MSR_RI) && !(now & MSR_RI)) /* trailing edge only */
		u->msr |= MSR_TERI;
	if (changed & MSR_DCD)
		u->msr |= MSR_DDCD;
	u->msr = (u->msr & MSR_DELTA) | now;
}

static void write_fcr(struct spk_uart *u, uint8_t value)
{
	/* Switching the FIFOs on or off empties them (16550A datasheet). */
	if ((value ^ u->fcr) & FCR_ENABLE)
		value |= FCR_CLEAR_RX | FCR_CLEAR_TX;
	if (value & FCR_CLEAR_RX)
		rx_clear(u);
	/* The transmit side has nothing queued: FCR_CLEAR_TX is a no-op.
	 * Without bit 0 the other bits are not programmed. */
	u->fcr = (value & FCR_ENABLE) ? (value & FCR_KEPT) : 0;
}

static void write_ier(struct spk_uart *u, uint8_t value)
{
	uint8_t old = u->ier;

	if (value & ~IER_VALID)
		spk_dev_log(&u->rl, u->name, SPK_LOG_DEBUG, "%s: IER bits 0x%02x ignored", u->name,
		            value & ~IER_VALID);
	u->ier = value & IER_VALID;
	/* A rising THRI with an empty THR raises THRE (the THR is always
	 * empty here); a falling one forgets it. */
	if ((u->ier ^ old) & IER_THRI)
		u->thr_ipending = u->ier & IER_THRI;
}

static void write_thr(struct spk_uart *u, uint8_t byte, struct tx_batch *out)
{
	u->thr_ipending = false;
	update_irq(u); /* the line falls here if THRE was its only cause */
	if (loopback(u))
		rx_push(u, byte); /* an overrun only sets LSR.OE */
	else if (out->n < sizeof(out->buf))
		out->buf[out->n++] = byte;
	/* The byte is gone at once: the THR is empty again. */
	u->thr_ipending = true;
}

static void write_reg(struct spk_uart *u, unsigned reg, uint8_t value, struct tx_batch *out)
{
	bool dlab = u->lcr & LCR_DLAB;

	switch (reg) {
	case REG_RBR_THR:
		if (dlab)
			u->dll = value;
		else
			write_thr(u, value, out);
		break;
	case REG_IER:
		if (dlab)
			u->dlm = value;
		else
			write_ier(u, value);
		break;
	case REG_IIR_FCR:
		write_fcr(u, value);
		break;
	case REG_LCR:
		u->lcr = value;
		break;
	case REG_MCR:
		write_mcr(u, value);
		break;
	case REG_LSR:
	case REG_MSR:
		/* Factory-test registers: writes do nothing on a 16550A. */
		spk_dev_log(&u->rl, u->name, SPK_LOG_DEBUG, "%s: write 0x%02x to read-only %s",
		            u->name, value, reg == REG_LSR ? "LSR" : "MSR");
		break;
	case REG_SCR:
		u->scr = value;
		break;
	}
}

static uint8_t read_iir(struct spk_uart *u)
{
	uint8_t id = iir_id(u);

	/* Reading IIR acknowledges THRE when it is the reported cause. */
	if (id == IIR_THRI)
		u->thr_ipending = false;
	return id | (fifo_on(u) ? IIR_FIFO_BITS : 0);
}

static uint8_t read_lsr(struct spk_uart *u)
{
	uint8_t lsr = LSR_THRE | LSR_TEMT | u->lsr_errors;

	if (u->rx_count)
		lsr |= LSR_DR;
	u->lsr_errors = 0;
	return lsr;
}

static uint8_t read_msr(struct spk_uart *u)
{
	uint8_t msr = u->msr;

	u->msr &= ~MSR_DELTA;
	return msr;
}

static uint8_t read_reg(struct spk_uart *u, unsigned reg)
{
	bool dlab = u->lcr & LCR_DLAB;

	switch (reg) {
	case REG_RBR_THR:
		return dlab ? u->dll : rx_pop(u);
	case REG_IER:
		return dlab ? u->dlm : u->ier;
	case REG_IIR_FCR:
		return read_iir(u);
	case REG_LCR:
		return u->lcr;
	case REG_MCR:
		return u->mcr;
	case REG_LSR:
		return read_lsr(u);
	case REG_MSR:
		return read_msr(u);
	case REG_SCR:
		return u->scr;
	}
	return 0xff;
}

/* Register of byte i of an access at offset, false past the 8 ports
 * (offset is checked first so that offset + i cannot wrap). */
static bool reg_of(uint64_t offset, unsigned i, unsigned *reg)
{
	if (offset >= UART_PORTS || offset + i >= UART_PORTS)
		return false;
	*reg = (unsigned)(offset + i);
	return true;
}

static uint64_t uart_read(void *opaque, uint64_t offset, unsigned width,
                          const struct spk_bus_access *who)
{
	struct spk_uart *u = opaque;
	uint64_t value = 0;

	if (width > 8)
		width = 8;
	pthread_mutex_lock(&u->lock);
	for (unsigned i = 0; i < width; i++) {
		unsigned reg;
		uint8_t byte = reg_of(offset, i, &reg) ? read_reg(u, reg) : 0xff;

		value |= (uint64_t)byte << (8 * i);
	}
	update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return value;
}

static void uart_write(void *opaque, uint64_t offset, unsigned width, uint64_t value,
                       const struct spk_bus_access *who)
{
	struct spk_uart *u = opaque;
	struct tx_batch out = {.n = 0};

	if (width > 8)
		width = 8;
	pthread_mutex_lock(&u->lock);
	if (width != 1)
		spk_dev_log(&u->rl, u->name, SPK_LOG_DEBUG,
		            "%s: %u-byte write at offset %llu split into bytes", u->name, width,
		            (unsigned long long)offset);
	for (unsigned i = 0; i < width; i++) {
		unsigned reg;

		if (reg_of(offset, i, &reg))
			write_reg(u, reg, (uint8_t)(value >> (8 * i)), &out);
	}
	update_irq(u);
	pthread_mutex_unlock(&u->lock);
	/*
	 * Outside the lock, so tx may block or call back into the UART.
	 * Two vCPUs writing at once may see their bytes leave in either
	 * order; that is one of the interleavings they could have had
	 * anyway, and a vCPU's own bytes (and anything it orders after
	 * them) stay in order because its write returns only after tx.
	 */
	if (out.n && u->tx)
		u->tx(u->tx_ctx, out.buf, out.n);
}

static const struct spk_bus_ops uart_ops = {.read = uart_read, .write = uart_write};

const struct spk_bus_ops *spk_uart_ops(void)
{
	return &uart_ops;
}

size_t spk_uart_receive(struct spk_uart *u, const uint8_t *buf, size_t n)
{
	size_t taken = 0;

	if (!u || !buf) {
		spk_fail(EINVAL, "uart: receive: no %s", u ? "buffer" : "device");
		return 0;
	}
	pthread_mutex_lock(&u->lock);
	/* In loopback the receiver hears only the transmitter. */
	if (!loopback(u)) {
		while (taken < n && u->rx_count < rx_capacity(u))
			rx_push(u, buf[taken++]);
	}
	update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return taken;
}

size_t spk_uart_rx_room(struct spk_uart *u)
{
	size_t room;

	if (!u) {
		spk_fail(EINVAL, "uart: rx room: no device");
		return 0;
	}
	pthread_mutex_lock(&u->lock);
	room = loopback(u) ? 0 : rx_capacity(u) - u->rx_count;
	pthread_mutex_unlock(&u->lock);
	return room;
}

int spk_uart_new(const struct spk_uart_config *cfg, struct spk_uart **out)
{
	struct spk_uart *u;
	int rc;

	if (!out)
		return spk_fail(EINVAL, "uart: no place for the device");
	*out = NULL;
	if (!cfg)
		return spk_fail(EINVAL, "uart: no config");
	u = calloc(1, sizeof(*u));
	if (!u)
		return spk_fail(ENOMEM, "uart: out of memory");
	rc = pthread_mutex_init(&u->lock, NULL);
	if (rc) {
		free(u);
		return spk_fail(rc, "uart: mutex: %s", strerror(rc));
	}
	snprintf(u->name, sizeof(u->name), "%s", cfg->name ? cfg->name : "uart");
	u->irq = cfg->irq;
	u->tx = cfg->tx;
	u->tx_ctx = cfg->tx_ctx;
	/* Power-on state: 8250-mode, 8N1 left to the driver, divisor 12
	 * (9600 baud) as a BIOS leaves it; the modem inputs idle. */
	u->dll = 12;
	u->msr = MSR_IDLE;
	*out = u;
	return 0;
}

void spk_uart_free(struct spk_uart *u)
{
	if (!u)
		return;
	pthread_mutex_destroy(&u->lock);
	free(u);
}

/* ---- state (include/sparkler/snapshot.h) ---- */

static int uart_save(void *opaque, struct spk_snap_writer *w)
{
	struct spk_uart *u = opaque;
	uint8_t rx[UART_FIFO];

	pthread_mutex_lock(&u->lock);
	for (unsigned i = 0; i < u->rx_count; i++)
		rx[i] = u->rx[(u->rx_head + i) % UART_FIFO];
	spk_snap_put_u8(w, "ier", u->ier);
	spk_snap_put_u8(w, "lcr", u->lcr);
	spk_snap_put_u8(w, "mcr", u->mcr);
	spk_snap_put_u8(w, "fcr", u->fcr);
	spk_snap_put_u8(w, "scr", u->scr);
	spk_snap_put_u8(w, "dll", u->dll);
	spk_snap_put_u8(w, "dlm", u->dlm);
	spk_snap_put_u8(w, "lsr_errors", u->lsr_errors);
	spk_snap_put_u8(w, "msr", u->msr);
	spk_snap_put_u8(w, "thr_ipending", u->thr_ipending);
	spk_snap_put_bytes(w, "rx", rx, u->rx_count);
	pthread_mutex_unlock(&u->lock);
	return spk_snap_writer_error(w);
}

static int uart_load(void *opaque, struct spk_snap_reader *r)
{
	struct spk_uart *u = opaque;
	uint8_t ier, lcr, mcr, fcr, scr, dll, dlm, lsr, msr;
	uint64_t v;
	bool thr;
	const void *rx;
	size_t n;
	int rc;

	if ((rc = spk_snap_get_mask(r, "ier", IER_VALID, &v)))
		return rc;
	ier = (uint8_t)v;
	if ((rc = spk_snap_get_u8(r, "lcr", &lcr)) ||
	    (rc = spk_snap_get_mask(r, "mcr", MCR_VALID, &v)))
		return rc;
	mcr = (uint8_t)v;
	if ((rc = spk_snap_get_mask(r, "fcr", FCR_KEPT, &v)))
		return rc;
	fcr = (uint8_t)v;
	if (fcr && !(fcr & FCR_ENABLE))
		return spk_snap_bad(r, "fcr", "0x%02x programs a FIFO that is off", fcr);
	if ((rc = spk_snap_get_u8(r, "scr", &scr)) || (rc = spk_snap_get_u8(r, "dll", &dll)) ||
	    (rc = spk_snap_get_u8(r, "dlm", &dlm)) ||
	    (rc = spk_snap_get_mask(r, "lsr_errors", LSR_ERRORS, &v)))
		return rc;
	lsr = (uint8_t)v;
	if ((rc = spk_snap_get_u8(r, "msr", &msr)))
		return rc;
	if ((msr & ~MSR_DELTA) != msr_inputs(mcr))
		return spk_snap_bad(r, "msr",
		                    "0x%02x: the inputs are not 0x%02x, what MCR 0x%02x gives", msr,
		                    msr_inputs(mcr), mcr);
	if ((rc = spk_snap_get_bool(r, "thr_ipending", &thr)) ||
	    (rc = spk_snap_get_blob(r, "rx", &rx, &n)))
		return rc;
	if (n > ((fcr & FCR_ENABLE) ? UART_FIFO : 1u))
		return spk_snap_bad(r, "rx", "%zu bytes, the FIFO holds %u", n,
		                    (fcr & FCR_ENABLE) ? UART_FIFO : 1u);
	if ((rc = spk_snap_reader_done(r)))
		return rc;

	pthread_mutex_lock(&u->lock);
	u->ier = ier;
	u->lcr = lcr;
	u->mcr = mcr;
	u->fcr = fcr;
	u->scr = scr;
	u->dll = dll;
	u->dlm = dlm;
	u->lsr_errors = lsr;
	u->msr = msr;
	u->thr_ipending = thr;
	memcpy(u->rx, rx, n);
	u->rx_head = 0;
	u->rx_count = (unsigned)n;
	update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return 0;
}

static const struct spk_dev_state_ops uart_state = {"uart8250", 1, uart_save, uart_load};

const struct spk_dev_state_ops *spk_uart_state_ops(void)
{
	return &uart_state;
}
