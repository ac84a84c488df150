/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-console (virtio 1.2 section 5.3) with one port and no
 * MULTIPORT: queue 0 receives (host to guest), queue 1 transmits. Linux
 * makes it hvc0. Host input waits in a 4 KiB ring until the guest has
 * posted receive buffers; a chain is taken from the receive queue only
 * when there is input for it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sparkler/snapshot.h>
#include <sparkler/virtio.h>

#include "core/internal.h"

#define CON_QUEUE_SIZE 256
#define CON_RX         0
#define CON_TX         1
#define CON_INPUT_MAX  4096
#define CON_CHUNK      4096
#define CON_CLASS      0x078000 /* simple communication controller, other */
#define F_SIZE         0
#define F_EMERG_WRITE  2
#define CFG_COLS       0
#define CFG_ROWS       2
#define CFG_MAX_PORTS  4
#define CFG_EMERG_WR   8
#define CFG_SIZE       12

struct spk_virtio_console {
	struct spk_virtio *vd;
	void (*output)(void *ctx, const uint8_t *buf, size_t n);
	void *output_ctx;
	/* under the device lock */
	uint16_t cols, rows;
	uint8_t in[CON_INPUT_MAX]; /* ring */
	size_t in_head, in_len;
};

static void out(struct spk_virtio_console *c, const uint8_t *buf, size_t n)
{
	if (c->output && n)
		c->output(c->output_ctx, buf, n);
}

/* ---- transmit ------------------------------------------------------------------ */

static void transmit(struct spk_virtio_console *c, const struct spk_virtq_chain *ch)
{
	uint8_t buf[CON_CHUNK];

	for (uint64_t off = 0; off < ch->out_len;) {
		int64_t n = spk_virtq_read(spk_virtio_mem(c->vd), ch, off, buf, sizeof(buf));

		if (n <= 0)
			break;
		out(c, buf, (size_t)n);
		off += (uint64_t)n;
	}
}

/* ---- receive -------------------------------------------------------------------- */

/* Copy queued input into one chain; returns the bytes written. */
static uint32_t fill_rx(struct spk_virtio_console *c, const struct spk_virtq_chain *ch)
{
	uint32_t done = 0;

	while (c->in_len && done < ch->in_len) {
		size_t run = CON_INPUT_MAX - c->in_head; /* contiguous part of the ring */
		size_t n = c->in_len < run ? c->in_len : run;

		if (n > ch->in_len - done)
			n = ch->in_len - done;
		int64_t w = spk_virtq_write(spk_virtio_mem(c->vd), ch, done, c->in + c->in_head, n);
		if (w <= 0)
			break;
		c->in_head = (c->in_head + (size_t)w) % CON_INPUT_MAX;
		c->in_len -= (size_t)w;
		done += (uint32_t)w;
	}
	return done;
}

static void deliver(struct spk_virtio_console *c)
{
	struct spk_virtq_chain ch;
	bool pushed = false;

	while (c->in_len && spk_virtio_pop(c->vd, CON_RX, &ch) > 0) {
		spk_virtio_push(c->vd, CON_RX, &ch, fill_rx(c, &ch));
		pushed = true;
	}
	if (pushed)
		spk_virtio_interrupt(c->vd, CON_RX);
}

size_t spk_virtio_console_input(struct spk_virtio_console *c, const uint8_t *buf, size_t n)
{
	size_t took = 0;

	if (!c || !buf) {
		spk_fail(EINVAL, "virtio-console: input needs a device and a buffer");
		return 0;
	}
	spk_virtio_lock(c->vd);
	while (took < n && c->in_len < CON_INPUT_MAX) {
		c->in[(c->in_head + c->in_len) % CON_INPUT_MAX] = buf[took++];
		c->in_len++;
	}
	deliver(c);
	spk_virtio_unlock(c->vd);
	return took;
}

/* ---- the device ------------------------------------------------------------------- */

static void con_notify(void *opaque, struct spk_virtio *vd, unsigned q)
{
	struct spk_virtio_console *c = opaque;
	struct spk_virtq_chain ch;

	if (q == CON_RX) {
		deliver(c);
		return;
	}
	while (spk_virtio_pop(vd, q, &ch) > 0) {
		transmit(c, &ch);
		spk_virtio_push(vd, q, &ch, 0);
	}
	spk_virtio_interrupt(vd, q);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void con_config_read(void *opaque, uint32_t off, void *buf, uint32_t len)
{
	struct spk_virtio_console *c = opaque;
	uint8_t cfg[CFG_SIZE] = {0};

	put16(cfg + CFG_COLS, c->cols);
	put16(cfg + CFG_ROWS, c->rows);
	cfg[CFG_MAX_PORTS] = 1;
	memcpy(buf, cfg + off, len);
}

static void con_config_write(void *opaque, uint32_t off, const void *buf, uint32_t len)
{
	struct spk_virtio_console *c = opaque;

	/* emerg_wr: one character, written before the queues work (early printk) */
	if (off == CFG_EMERG_WR && len >= 1)
		out(c, buf, 1);
}

/* State: the console size the guest sees, host input not delivered yet. */
static int con_save(void *opaque, struct spk_snap_writer *w)
{
	struct spk_virtio_console *c = opaque;
	uint8_t *in = malloc(CON_INPUT_MAX);
	int rc;

	if (!in)
		return spk_fail(ENOMEM, "virtio-console: out of memory");
	for (size_t i = 0; i < c->in_len; i++)
		in[i] = c->in[(c->in_head + i) % CON_INPUT_MAX];
	spk_snap_put_u16(w, "cols", c->cols);
	spk_snap_put_u16(w, "rows", c->rows);
	rc = spk_snap_put_bytes(w, "input", in, c->in_len);
	free(in);
	return rc;
}

static int con_load(void *opaque, struct spk_snap_reader *r)
{
	struct spk_virtio_console *c = opaque;
	uint16_t cols, rows;
	const void *in;
	size_t n;
	int rc;

	if ((rc = spk_snap_get_u16(r, "cols", &cols)) ||
	    (rc = spk_snap_get_u16(r, "rows", &rows)) ||
	    (rc = spk_snap_get_blob(r, "input", &in, &n)))
		return rc;
	if (n > CON_INPUT_MAX)
		return spk_snap_bad(r, "input", "%zu bytes, the buffer holds %d", n, CON_INPUT_MAX);
	if ((rc = spk_snap_reader_done(r)))
		return rc;
	c->cols = cols;
	c->rows = rows;
	memcpy(c->in, in, n);
	c->in_head = 0;
	c->in_len = n;
	return 0;
}

/* The queues are back: hand over input that was waiting. */
static void con_restored(void *opaque, struct spk_virtio *vd)
{
	deliver(opaque);
}

static const struct spk_dev_state_ops con_state = {"virtio_console", 1, con_save, con_load};

static const struct spk_virtio_ops con_ops = {
    .config_read = con_config_read,
    .config_write = con_config_write,
    .queue_notify = con_notify,
    .state = &con_state,
    .restored = con_restored,
};

int spk_virtio_console_new(const struct spk_virtio_console_config *cfg,
                           struct spk_virtio_console **out_c)
{
	struct spk_virtio_console *c;
	int rc;

	if (!cfg || !out_c)
		return spk_fail(EINVAL, "virtio-console: new needs a config and an out pointer");
	c = calloc(1, sizeof(*c));
	if (!c)
		return spk_fail(ENOMEM, "virtio-console: out of memory");
	c->output = cfg->output;
	c->output_ctx = cfg->output_ctx;
	c->cols = cfg->cols;
	c->rows = cfg->rows;
	const struct spk_virtio_config vc = {
	    .name = "virtio-console",
	    .device_id = SPK_VIRTIO_ID_CONSOLE,
	    .class_code = CON_CLASS,
	    .num_queues = 2,
	    .queue_max = CON_QUEUE_SIZE,
	    .features = SPK_VIRTIO_F_BIT(F_EMERG_WRITE) |
	                (cfg->cols || cfg->rows ? SPK_VIRTIO_F_BIT(F_SIZE) : 0),
	    .config_size = CFG_SIZE,
	    .ops = &con_ops,
	    .opaque = c,
	    .pci = cfg->pci,
	    .slot = cfg->slot,
	    .mem = cfg->mem,
	    .loop = cfg->loop,
	};
	if ((rc = spk_virtio_new(&vc, &c->vd)) < 0) {
		free(c);
		return rc;
	}
	*out_c = c;
	return 0;
}

void spk_virtio_console_free(struct spk_virtio_console *c)
{
	if (!c)
		return;
	spk_virtio_free(c->vd);
	free(c);
}

struct spk_virtio *spk_virtio_console_dev(struct spk_virtio_console *c)
{
	if (!c) {
		spk_fail(EINVAL, "virtio-console: dev needs a device");
		return NULL;
	}
	return c->vd;
}

void spk_virtio_console_resize(struct spk_virtio_console *c, uint16_t cols, uint16_t rows)
{
	if (!c) {
		spk_fail(EINVAL, "virtio-console: resize needs a device");
		return;
	}
	spk_virtio_lock(c->vd);
	if (spk_virtio_features(c->vd) & SPK_VIRTIO_F_BIT(F_SIZE) || c->cols || c->rows) {
		c->cols = cols;
		c->rows = rows;
		spk_virtio_config_changed(c->vd);
	}
	spk_virtio_unlock(c->vd);
}
