// SPDX-License-Identifier: Apache-2.0
/*
 * The virtio PCI transport, virtio-rng and virtio-console without KVM: a
 * driver written here in C does what a guest does, through the bus (config
 * ports, the BAR window) and a fake guest memory, with notifications
 * handled on the notifying thread and interrupts going to fakes.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sparkler/pci.h>
#include <sparkler/platform.h>
#include <sparkler/virtio.h>
#include <sparkler/virtio_net.h>
#include <sparkler/virtio_vsock.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../devices/devtest.h"
#include "../snapshot/snaptest.h"
#include "vqtest.h"

#define WIN SPK_PC_PCI_MMIO_START

/* struct virtio_pci_common_cfg offsets */
enum {
	DFSEL = 0x00,
	DF = 0x04,
	GFSEL = 0x08,
	GF = 0x0c,
	MSIX_CFG = 0x10,
	NUMQ = 0x12,
	STATUS = 0x14,
	GEN = 0x15,
	QSEL = 0x16,
	QSIZE_ = 0x18,
	QMSIX = 0x1a,
	QENABLE = 0x1c,
	QNOFF = 0x1e,
	QDESC = 0x20,
	QDRV = 0x28,
	QDEV = 0x30,
};

struct drv {
	unsigned slot;
	uint64_t bar;
	uint64_t common, notify, isr, device;
	uint32_t notify_mult;
	uint8_t pcicfg, msix;
	uint64_t ring; /* where this driver's rings start */
};

struct fx {
	struct vt_mem m;
	struct spk_bus *bus;
	struct spk_pci_host *h;
	struct fake_irq irq;
	unsigned msis;
	struct spk_msi last_msi;
	struct spk_virtio_rng *rng;
	struct spk_virtio_console *con;
	char out[4096];
	size_t out_len;
	struct drv r, c;
	struct log_capture log;
};

static void on_msi(void *ctx, const struct spk_msi *msi)
{
	struct fx *f = ctx;

	f->msis++;
	f->last_msi = *msi;
}

static void con_out(void *ctx, const uint8_t *buf, size_t n)
{
	struct fx *f = ctx;

	assert_true(f->out_len + n <= sizeof(f->out));
	memcpy(f->out + f->out_len, buf, n);
	f->out_len += n;
}

/* ---- bus accessors ---- */

static uint64_t mm_rd(struct fx *f, uint64_t a, unsigned w)
{
	uint64_t v = 0;

	assert_int_equal(spk_bus_read(f->bus, SPK_BUS_MMIO, a, w, &v, NULL), 0);
	return v;
}

static void mm_wr(struct fx *f, uint64_t a, unsigned w, uint64_t v)
{
	assert_int_equal(spk_bus_write(f->bus, SPK_BUS_MMIO, a, w, v, NULL), 0);
}

static uint32_t cfg_rd(struct fx *f, unsigned slot, unsigned reg, unsigned w)
{
	return spk_pci_host_cfg_read(f->h, slot, reg, w);
}

static void cfg_wr(struct fx *f, unsigned slot, unsigned reg, unsigned w, uint32_t v)
{
	spk_pci_host_cfg_write(f->h, slot, reg, w, v);
}

/* ---- a driver ---- */

/* Find the virtio device of type id, map its BAR, read its capabilities. */
/* The first function of device id at slot `from` or above. */
static void probe_from(struct fx *f, struct drv *d, uint16_t id, uint64_t ring, unsigned from)
{
	memset(d, 0, sizeof(*d));
	d->ring = ring;
	for (d->slot = from; d->slot < 32; d->slot++)
		if (cfg_rd(f, d->slot, 0, 4) == ((0x1040u + id) << 16 | 0x1af4))
			break;
	assert_true(d->slot < 32);
	assert_int_equal(cfg_rd(f, d->slot, SPK_PCI_SUBSYS_ID, 2), id);
	assert_int_equal(cfg_rd(f, d->slot, SPK_PCI_REVISION, 1), 1);
	d->bar = cfg_rd(f, d->slot, SPK_PCI_BAR0, 4) & ~0xfu;
	d->bar |= (uint64_t)cfg_rd(f, d->slot, SPK_PCI_BAR0 + 4, 4) << 32;
	assert_true(d->bar >= WIN);
	cfg_wr(f, d->slot, SPK_PCI_COMMAND, 2, SPK_PCI_CMD_MEMORY | SPK_PCI_CMD_MASTER);
	for (uint8_t at = (uint8_t)cfg_rd(f, d->slot, SPK_PCI_CAP_PTR, 1); at;
	     at = (uint8_t)cfg_rd(f, d->slot, at + 1u, 1)) {
		unsigned capid = cfg_rd(f, d->slot, at, 1), type = cfg_rd(f, d->slot, at + 3u, 1);
		uint64_t off = cfg_rd(f, d->slot, at + 8u, 4);

		if (capid == SPK_PCI_CAP_ID_MSIX) {
			d->msix = at;
			continue;
		}
		assert_int_equal(capid, SPK_PCI_CAP_ID_VENDOR);
		assert_int_equal(cfg_rd(f, d->slot, at + 4u, 1), 0); /* BAR 0 */
		switch (type) {
		case 1:
			d->common = d->bar + off;
			break;
		case 2:
			d->notify = d->bar + off;
			d->notify_mult = cfg_rd(f, d->slot, at + 16u, 4);
			break;
		case 3:
			d->isr = d->bar + off;
			break;
		case 4:
			d->device = d->bar + off;
			break;
		case 5:
			d->pcicfg = at;
			break;
		}
	}
	assert_true(d->common && d->notify && d->isr && d->pcicfg && d->msix);
}

static void probe(struct fx *f, struct drv *d, uint16_t id, uint64_t ring)
{
	probe_from(f, d, id, ring, 1);
}

static uint8_t status(struct fx *f, struct drv *d)
{
	return (uint8_t)mm_rd(f, d->common + STATUS, 1);
}

/* Reset, negotiate (accept = driver features), set up every queue of size qs. */
static void init_dev(struct fx *f, struct drv *d, uint64_t accept, uint16_t qs)
{
	mm_wr(f, d->common + STATUS, 1, 0);
	assert_int_equal(status(f, d), 0);
	mm_wr(f, d->common + STATUS, 1, SPK_VIRTIO_S_ACKNOWLEDGE | SPK_VIRTIO_S_DRIVER);
	mm_wr(f, d->common + GFSEL, 4, 0);
	mm_wr(f, d->common + GF, 4, (uint32_t)accept);
	mm_wr(f, d->common + GFSEL, 4, 1);
	mm_wr(f, d->common + GF, 4, (uint32_t)(accept >> 32));
	mm_wr(f, d->common + STATUS, 1, 1 | 2 | SPK_VIRTIO_S_FEATURES_OK);
	assert_true(status(f, d) & SPK_VIRTIO_S_FEATURES_OK);
	unsigned nq = (unsigned)mm_rd(f, d->common + NUMQ, 2);
	for (unsigned q = 0; q < nq; q++) {
		uint64_t base = d->ring + 0x1000ull * 3 * q;

		mm_wr(f, d->common + QSEL, 2, q);
		mm_wr(f, d->common + QSIZE_, 2, qs);
		mm_wr(f, d->common + QDESC, 4, (uint32_t)base); /* 64-bit fields in two halves */
		mm_wr(f, d->common + QDESC + 4, 4, 0);
		mm_wr(f, d->common + QDRV, 8, base + 0x1000);
		mm_wr(f, d->common + QDEV, 8, base + 0x2000);
		mm_wr(f, d->common + QENABLE, 2, 1);
		assert_int_equal(mm_rd(f, d->common + QENABLE, 2), 1);
	}
	mm_wr(f, d->common + STATUS, 1, 1 | 2 | 8 | SPK_VIRTIO_S_DRIVER_OK);
	assert_int_equal(status(f, d), 1 | 2 | 8 | 4);
}

static uint64_t qdesc(struct drv *d, unsigned q)
{
	return d->ring + 0x3000ull * q;
}

static void notify(struct fx *f, struct drv *d, unsigned q)
{
	mm_wr(f, d->notify + (uint64_t)q * d->notify_mult, 2, q);
}

static const uint64_t V1 = 1ull << 32;

/* ---- fixture ---- */

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	vt_mem_init(&f->m);
	assert_int_equal(spk_bus_new(&f->bus), 0);
	const struct spk_pci_host_config hc = {
	    .bus = f->bus,
	    .ecam = SPK_PC_PCI_ECAM,
	    .mmio_start = SPK_PC_PCI_MMIO_START,
	    .mmio_size = SPK_PC_PCI_MMIO_SIZE,
	    .intx = fake_line(&f->irq, 16),
	    .msi = on_msi,
	    .msi_ctx = f,
	};
	assert_int_equal(spk_pci_host_new(&hc, &f->h), 0);
	const struct spk_virtio_rng_config rc = {.pci = f->h, .slot = -1, .mem = f->m.mem};
	assert_int_equal(spk_virtio_rng_new(&rc, &f->rng), 0);
	const struct spk_virtio_console_config cc = {
	    .pci = f->h, .slot = -1, .mem = f->m.mem, .output = con_out, .output_ctx = f};
	assert_int_equal(spk_virtio_console_new(&cc, &f->con), 0);
	probe(f, &f->r, SPK_VIRTIO_ID_RNG, 0x20000);
	probe(f, &f->c, SPK_VIRTIO_ID_CONSOLE, 0x40000);
	log_capture_start(&f->log);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	log_capture_stop();
	spk_virtio_rng_free(f->rng);
	spk_virtio_console_free(f->con);
	spk_pci_host_free(f->h);
	spk_bus_free(f->bus);
	vt_mem_fini(&f->m);
	free(f);
	return 0;
}

/* ---- tests ---- */

static void test_identity_and_caps(void **state)
{
	struct fx *f = *state;

	assert_int_equal(mm_rd(f, f->r.common + NUMQ, 2), 1);
	assert_int_equal(mm_rd(f, f->c.common + NUMQ, 2), 2);
	mm_wr(f, f->r.common + DFSEL, 4, 1);
	assert_int_equal(mm_rd(f, f->r.common + DF, 4), 1); /* VERSION_1 */
	mm_wr(f, f->r.common + DFSEL, 4, 0);
	assert_int_equal(mm_rd(f, f->r.common + DF, 4), 3u << 28); /* INDIRECT, EVENT_IDX */
	mm_wr(f, f->r.common + DFSEL, 4, 7);
	assert_int_equal(mm_rd(f, f->r.common + DF, 4), 0);
	assert_int_equal(cfg_rd(f, f->c.slot, SPK_PCI_REVISION, 4) >> 8, 0x078000);
	assert_int_equal(mm_rd(f, f->r.common + QSIZE_, 2), 256); /* queue 0 */
	mm_wr(f, f->r.common + QSEL, 2, 5);
	assert_int_equal(mm_rd(f, f->r.common + QSIZE_, 2), 0); /* no queue 5 */
	/* the console's config: max_nr_ports 1 */
	assert_int_equal(mm_rd(f, f->c.device + 4, 4), 1);
	/* the BAR is 64-bit */
	assert_int_equal(cfg_rd(f, f->r.slot, SPK_PCI_BAR0, 4) & 0x6, 0x4);
}

static void test_feature_negotiation(void **state)
{
	struct fx *f = *state;
	struct drv *d = &f->r;

	mm_wr(f, d->common + STATUS, 1, 3);
	mm_wr(f, d->common + GF, 4, 0); /* no VERSION_1: refused */
	mm_wr(f, d->common + STATUS, 1, 3 | 8);
	assert_int_equal(status(f, d), 3);
	assert_non_null(strstr(f->log.last, "VERSION_1"));
	mm_wr(f, d->common + GFSEL, 4, 1);
	mm_wr(f, d->common + GF, 4, 1 | 2); /* bit 33 was not offered */
	mm_wr(f, d->common + STATUS, 1, 3 | 8);
	assert_int_equal(status(f, d), 3);
	assert_non_null(strstr(f->log.last, "not offered"));
	mm_wr(f, d->common + GF, 4, 1);
	mm_wr(f, d->common + STATUS, 1, 3 | 8);
	assert_int_equal(status(f, d), 3 | 8);
	mm_wr(f, d->common + GF, 4, 0); /* fixed now */
	assert_int_equal(mm_rd(f, d->common + GF, 4), 1);
	mm_wr(f, d->common + STATUS, 1, 1); /* clearing bits without a reset: ignored */
	assert_int_equal(status(f, d), 3 | 8);
	mm_wr(f, d->common + STATUS, 1, 0xff); /* NEEDS_RESET is the device's */
	assert_false(status(f, d) & SPK_VIRTIO_S_NEEDS_RESET);
	mm_wr(f, d->common + STATUS, 1, 0);
	assert_int_equal(status(f, d), 0);
	mm_wr(f, d->common + GFSEL, 4, 1);
	assert_int_equal(mm_rd(f, d->common + GF, 4), 0);
	/* DRIVER_OK before FEATURES_OK: refused */
	mm_wr(f, d->common + STATUS, 1, 3 | 4);
	assert_int_equal(status(f, d), 3);
}

/* Post a writable buffer of len at gpa on queue q as chain head 0. */
static void post(struct fx *f, struct drv *d, unsigned q, uint64_t gpa, uint32_t len, bool wr)
{
	uint16_t flags = wr ? SPK_VIRTQ_DESC_F_WRITE : 0;
	uint16_t idx = vt_get16(f->m.ram + qdesc(d, q) + 0x1000 + 2);

	vt_desc(&f->m, qdesc(d, q), idx % 8, gpa, len, flags, 0);
	vt_avail(&f->m, qdesc(d, q) + 0x1000, 8, idx % 8);
}

static void test_rng(void **state)
{
	struct fx *f = *state;
	struct drv *d = &f->r;
	uint32_t id, len;

	init_dev(f, d, V1, 8);
	post(f, d, 0, 0x80000, 64, true);
	post(f, d, 0, 0x80100, 64, true);
	notify(f, d, 0);
	assert_int_equal(vt_used_idx(&f->m, qdesc(d, 0) + 0x2000), 2);
	vt_used_elem(&f->m, qdesc(d, 0) + 0x2000, 8, 1, &id, &len);
	assert_int_equal(id, 1);
	assert_int_equal(len, 64);
	assert_memory_not_equal(f->m.ram + 0x80000, f->m.ram + 0x80100, 64);
	assert_int_equal(spk_virtio_rng_bytes(f->rng), 128);
	/* MSI-X off: INTx and the ISR */
	assert_true(f->irq.level);
	assert_int_equal(mm_rd(f, d->isr, 1), 1);
	assert_false(f->irq.level);
	assert_int_equal(mm_rd(f, d->isr, 1), 0);
}

/* Turn the loop while anything is ready (nothing here waits on time). */
static void settle(struct spk_evloop *loop)
{
	while (spk_evloop_run_once(loop, 0) > 0)
		;
}

/*
 * The entropy device's rate limit (Firecracker's PUT /entropy
 * rate_limiter): 1000 bytes that refill in an hour, so the limit cannot
 * refill during the test, whatever the machine's speed. Requests of 512
 * bytes: the first two go (the second into debt), the third waits; a new
 * limit (none) lets it go. Nothing here depends on time.
 */
static void test_rng_rate_limit(void **state)
{
	struct fx *f = *state;
	struct spk_evloop *loop;
	struct spk_virtio_rng *r;
	struct spk_rate_limit_stats st;
	struct drv d;
	const struct spk_rate_limit lim = {.bandwidth = {.size = 1000, .refill_time_ms = 3600000}};
	const struct spk_rate_limit none = {0};
	const struct spk_rate_limit bad = {.ops = {.size = 5}}; /* no refill time */

	assert_int_equal(spk_evloop_new("rng-test", &loop), 0);
	struct spk_virtio_rng_config rc = {
	    .pci = f->h, .slot = -1, .mem = f->m.mem, .loop = loop, .rate_limit = bad};
	assert_int_equal(spk_virtio_rng_new(&rc, &r), -EINVAL);
	assert_non_null(strstr(spk_last_error(), "refill_time"));
	rc.rate_limit = lim;
	assert_int_equal(spk_virtio_rng_new(&rc, &r), 0);
	probe_from(f, &d, SPK_VIRTIO_ID_RNG, 0x60000, f->c.slot + 1);
	init_dev(f, &d, V1, 8);
	post(f, &d, 0, 0x80000, 512, true);
	post(f, &d, 0, 0x80400, 512, true);
	post(f, &d, 0, 0x80800, 512, true);
	notify(f, &d, 0);
	settle(loop);
	assert_int_equal(vt_used_idx(&f->m, qdesc(&d, 0) + 0x2000), 2);
	assert_int_equal(spk_virtio_rng_bytes(r), 1024);
	spk_virtio_rng_rate_stats(r, &st);
	assert_int_equal(st.throttled, 1);
	assert_int_equal(st.ops, 2);
	assert_int_equal(st.bytes, 1024);
	/* another notify changes nothing: the queue waits for the refill */
	notify(f, &d, 0);
	settle(loop);
	assert_int_equal(vt_used_idx(&f->m, qdesc(&d, 0) + 0x2000), 2);
	assert_int_equal(spk_virtio_rng_set_rate_limit(r, &bad), -EINVAL);
	assert_int_equal(spk_virtio_rng_set_rate_limit(NULL, &none), -EINVAL);
	assert_int_equal(spk_virtio_rng_set_rate_limit(r, &none), 0);
	settle(loop);
	assert_int_equal(vt_used_idx(&f->m, qdesc(&d, 0) + 0x2000), 3);
	assert_int_equal(spk_virtio_rng_bytes(r), 1536);
	spk_virtio_rng_rate_stats(NULL, &st);
	assert_int_equal(st.bytes, 0);
	spk_virtio_rng_free(r);
	spk_evloop_free(loop);
}

static void test_rng_msix(void **state)
{
	struct fx *f = *state;
	struct drv *d = &f->r;
	uint64_t tbl = d->bar + (cfg_rd(f, d->slot, d->msix + 4u, 4) & ~7u);

	init_dev(f, d, V1, 8);
	mm_wr(f, tbl + 16, 4, 0xfee00000);
	mm_wr(f, tbl + 16 + 8, 4, 0x41);
	mm_wr(f, tbl + 16 + 12, 4, 0);
	cfg_wr(f, d->slot, d->msix + 2u, 2, SPK_PCI_MSIX_ENABLE);
	mm_wr(f, d->common + QSEL, 2, 0);
	mm_wr(f, d->common + QMSIX, 2, 1);
	assert_int_equal(mm_rd(f, d->common + QMSIX, 2), 1);
	mm_wr(f, d->common + QMSIX, 2, 9); /* no such vector: reads back NO_VECTOR */
	assert_int_equal(mm_rd(f, d->common + QMSIX, 2), 0xffff);
	mm_wr(f, d->common + QMSIX, 2, 1);
	post(f, d, 0, 0x80000, 16, true);
	notify(f, d, 0);
	assert_int_equal(f->msis, 1);
	assert_int_equal(f->last_msi.data, 0x41);
	assert_false(f->irq.level);
}

static void test_bus_master_off(void **state)
{
	struct fx *f = *state;
	struct drv *d = &f->r;

	init_dev(f, d, V1, 8);
	cfg_wr(f, d->slot, SPK_PCI_COMMAND, 2, SPK_PCI_CMD_MEMORY);
	post(f, d, 0, 0x80000, 16, true);
	notify(f, d, 0);
	assert_int_equal(vt_used_idx(&f->m, qdesc(d, 0) + 0x2000), 0);
	assert_non_null(strstr(f->log.last, "bus mastering off"));
	cfg_wr(f, d->slot, SPK_PCI_COMMAND, 2, SPK_PCI_CMD_MEMORY | SPK_PCI_CMD_MASTER);
	notify(f, d, 0);
	assert_int_equal(vt_used_idx(&f->m, qdesc(d, 0) + 0x2000), 1);
}

static void test_console(void **state)
{
	struct fx *f = *state;
	struct drv *d = &f->c;
	uint32_t id, len;

	init_dev(f, d, V1, 8);
	/* output: the transmit queue */
	memcpy(f->m.ram + 0x90000, "hello hvc0\n", 11);
	post(f, d, 1, 0x90000, 11, false);
	notify(f, d, 1);
	assert_int_equal(f->out_len, 11);
	assert_memory_equal(f->out, "hello hvc0\n", 11);
	/* input before any receive buffer waits */
	assert_int_equal(spk_virtio_console_input(f->con, (const uint8_t *)"abc", 3), 3);
	assert_int_equal(vt_used_idx(&f->m, qdesc(d, 0) + 0x2000), 0);
	post(f, d, 0, 0x91000, 2, true);
	notify(f, d, 0);
	assert_int_equal(vt_used_idx(&f->m, qdesc(d, 0) + 0x2000), 1);
	vt_used_elem(&f->m, qdesc(d, 0) + 0x2000, 8, 0, &id, &len);
	assert_int_equal(len, 2);
	assert_memory_equal(f->m.ram + 0x91000, "ab", 2);
	post(f, d, 0, 0x91100, 64, true);
	notify(f, d, 0);
	vt_used_elem(&f->m, qdesc(d, 0) + 0x2000, 8, 1, &id, &len);
	assert_int_equal(len, 1);
	assert_int_equal(f->m.ram[0x91100], 'c');
	/* a buffer is waiting: input goes straight in */
	post(f, d, 0, 0x91200, 64, true);
	assert_int_equal(spk_virtio_console_input(f->con, (const uint8_t *)"xyz", 3), 3);
	assert_int_equal(vt_used_idx(&f->m, qdesc(d, 0) + 0x2000), 3);
	/* emergency write */
	mm_wr(f, d->device + 8, 4, '!');
	assert_int_equal(f->out[f->out_len - 1], '!');
	/* input is bounded */
	uint8_t big[5000];
	memset(big, 'k', sizeof(big));
	assert_int_equal(spk_virtio_console_input(f->con, big, sizeof(big)), 4096);
}

static void test_violation_needs_reset(void **state)
{
	struct fx *f = *state;
	struct drv *d = &f->r;
	uint64_t q = qdesc(d, 0);

	init_dev(f, d, V1, 8);
	init_dev(f, &f->c, V1, 8);
	/* a descriptor loop */
	vt_desc(&f->m, q, 3, 0x80000, 8, SPK_VIRTQ_DESC_F_WRITE | SPK_VIRTQ_DESC_F_NEXT, 4);
	vt_desc(&f->m, q, 4, 0x80000, 8, SPK_VIRTQ_DESC_F_WRITE | SPK_VIRTQ_DESC_F_NEXT, 3);
	vt_avail(&f->m, q + 0x1000, 8, 3);
	unsigned before = f->log.warnings;
	notify(f, d, 0);
	assert_true(status(f, d) & SPK_VIRTIO_S_NEEDS_RESET);
	assert_int_equal(f->log.warnings, before + 1);
	assert_non_null(strstr(f->log.last, "virtio-rng (00:"));
	assert_non_null(strstr(f->log.last, "queue 0"));
	assert_non_null(strstr(f->log.last, "longer than the queue size 8"));
	assert_non_null(strstr(f->log.last, "needs reset"));
	assert_true(f->irq.level); /* the config-change interrupt */
	assert_int_equal(mm_rd(f, d->isr, 1) & 2, 2);
	/* nothing more happens until the reset, and it is said once */
	notify(f, d, 0);
	assert_int_equal(f->log.warnings, before + 1);
	assert_int_equal(vt_used_idx(&f->m, q + 0x2000), 0);
	/* the other device still works */
	memcpy(f->m.ram + 0x90000, "still here", 10);
	post(f, &f->c, 1, 0x90000, 10, false);
	notify(f, &f->c, 1);
	assert_int_equal(f->out_len, 10);
	/* a reset and a new start work again */
	memset(f->m.ram + q, 0, 0x3000);
	init_dev(f, d, V1, 8);
	post(f, d, 0, 0x80000, 16, true);
	notify(f, d, 0);
	assert_int_equal(vt_used_idx(&f->m, q + 0x2000), 1);
}

static void test_bad_queue_setup(void **state)
{
	struct fx *f = *state;
	struct drv *d = &f->r;

	mm_wr(f, d->common + STATUS, 1, 0);
	mm_wr(f, d->common + STATUS, 1, 3);
	mm_wr(f, d->common + GFSEL, 4, 1);
	mm_wr(f, d->common + GF, 4, 1);
	mm_wr(f, d->common + STATUS, 1, 3 | 8);
	mm_wr(f, d->common + QSEL, 2, 0);
	mm_wr(f, d->common + QSIZE_, 2, 100);
	mm_wr(f, d->common + QDESC, 8, 0x20000);
	mm_wr(f, d->common + QDRV, 8, 0x21000);
	mm_wr(f, d->common + QDEV, 8, 0x22000);
	mm_wr(f, d->common + QENABLE, 2, 1);
	assert_int_equal(mm_rd(f, d->common + QENABLE, 2), 0);
	assert_true(status(f, d) & SPK_VIRTIO_S_NEEDS_RESET);
	assert_non_null(strstr(f->log.last, "queue size 100"));
	/* a ring outside RAM */
	mm_wr(f, d->common + STATUS, 1, 0);
	mm_wr(f, d->common + STATUS, 1, 3);
	mm_wr(f, d->common + GFSEL, 4, 1);
	mm_wr(f, d->common + GF, 4, 1);
	mm_wr(f, d->common + STATUS, 1, 3 | 8);
	mm_wr(f, d->common + QDESC, 8, 0x7fff0000);
	mm_wr(f, d->common + QDRV, 8, 0x21000);
	mm_wr(f, d->common + QDEV, 8, 0x22000);
	mm_wr(f, d->common + QENABLE, 2, 1);
	assert_non_null(strstr(f->log.last, "descriptor ring at 0x7fff0000"));
}

static void test_pci_cfg_window(void **state)
{
	struct fx *f = *state;
	struct drv *d = &f->c;

	cfg_wr(f, d->slot, d->pcicfg + 4u, 1, 0);    /* BAR 0 */
	cfg_wr(f, d->slot, d->pcicfg + 8u, 4, NUMQ); /* offset */
	cfg_wr(f, d->slot, d->pcicfg + 12u, 4, 2);   /* length */
	assert_int_equal(cfg_rd(f, d->slot, d->pcicfg + 16u, 2), 2);
	cfg_wr(f, d->slot, d->pcicfg + 8u, 4, STATUS);
	cfg_wr(f, d->slot, d->pcicfg + 12u, 4, 1);
	cfg_wr(f, d->slot, d->pcicfg + 16u, 1, 1); /* ACKNOWLEDGE through the window */
	assert_int_equal(status(f, d), 1);
	cfg_wr(f, d->slot, d->pcicfg + 12u, 4, 3); /* bad length: nothing */
	cfg_wr(f, d->slot, d->pcicfg + 16u, 4, 0);
	assert_int_equal(status(f, d), 1);
	cfg_wr(f, d->slot, d->pcicfg + 8u, 4, 0x7ffffff0); /* outside the BAR: nothing */
	cfg_wr(f, d->slot, d->pcicfg + 12u, 4, 4);
	assert_int_equal(cfg_rd(f, d->slot, d->pcicfg + 16u, 4), 0);
}

static void test_common_any_width(void **state)
{
	struct fx *f = *state;
	struct drv *d = &f->r;

	/* one 8-byte read over num_queues, status, generation, queue_select */
	uint64_t v = mm_rd(f, d->common + NUMQ, 8);
	assert_int_equal(v & 0xffff, 1);
	mm_wr(f, d->common + QDESC, 8, 0x1122334455667788ull);
	assert_int_equal(mm_rd(f, d->common + QDESC + 2, 4), 0x33445566);
	mm_wr(f, d->common + QDESC + 3, 1, 0xaa);
	assert_int_equal(mm_rd(f, d->common + QDESC, 8), 0x11223344aa667788ull);
	/* the rest of the BAR: reads 0, writes vanish */
	assert_int_equal(mm_rd(f, d->bar + 0x500, 4), 0);
	mm_wr(f, d->bar + 0x500, 4, 1);
	mm_wr(f, d->notify + 0x800, 2, 0); /* a queue that does not exist */
}

/* Random guest writes everywhere in both BARs and config spaces. */
static void test_hostile(void **state)
{
	struct fx *f = *state;
	uint64_t seed = 77;

	init_dev(f, &f->r, V1 | (3u << 28), 8);
	init_dev(f, &f->c, V1 | (3u << 28), 8);
	for (int i = 0; i < HOSTILE_ITERATIONS; i++) {
		struct drv *d = prng_next(&seed) & 1 ? &f->r : &f->c;
		unsigned w = prng_width(&seed);
		uint64_t off = prng_next(&seed) % 0x8000 & ~(uint64_t)(w - 1);
		uint64_t v = prng_value(&seed, w), got;

		if (prng_next(&seed) % 8 == 0) {
			cfg_wr(f, d->slot, (unsigned)(prng_next(&seed) % 256) & ~3u, 4,
			       (uint32_t)prng_next(&seed));
			cfg_wr(f, d->slot, SPK_PCI_COMMAND, 2, 6);
			continue;
		}
		/* rings and descriptors get random bytes too */
		f->m.ram[0x20000 + prng_next(&seed) % 0x40000] = (uint8_t)v;
		if (prng_next(&seed) & 1)
			spk_bus_write(f->bus, SPK_BUS_MMIO, d->bar + off, w, v, NULL);
		else
			spk_bus_read(f->bus, SPK_BUS_MMIO, d->bar + off, w, &got, NULL);
	}
	assert_true(f->log.lines < 400);
}

/* ---- snapshots: the transport, rng and console saved in one machine, loaded in another ---- */

static void *save_machine(struct fx *f, size_t *len)
{
	struct spk_snap_writer *w;
	struct spk_snap_header h;
	const void *buf;
	void *copy;

	spk_snap_header_host(&h);
	h.created = 1;
	assert_int_equal(spk_snap_writer_new(&w), 0);
	assert_int_equal(spk_snap_put_header(w, &h), 0);
	assert_int_equal(spk_snap_save_device(w, "pci", spk_pci_host_state_ops(), f->h), 0);
	if (spk_snap_save_device(w, "rng", spk_virtio_state_ops(spk_virtio_rng_dev(f->rng)),
	                         spk_virtio_rng_dev(f->rng)) != 0)
		fail_msg("%s", spk_last_error());
	assert_int_equal(spk_snap_save_device(w, "console",
	                                      spk_virtio_state_ops(spk_virtio_console_dev(f->con)),
	                                      spk_virtio_console_dev(f->con)),
	                 0);
	assert_int_equal(spk_snap_writer_finish(w, &buf, len), 0);
	copy = malloc(*len);
	memcpy(copy, buf, *len);
	spk_snap_writer_free(w);
	return copy;
}

static void load_machine(struct fx *g, const void *buf, size_t len)
{
	struct spk_snap_file *sf;

	assert_int_equal(spk_snap_open_buf(buf, len, &sf), 0);
	assert_int_equal(spk_snap_load_device(sf, "pci", spk_pci_host_state_ops(), g->h), 0);
	if (spk_snap_load_device(sf, "rng", spk_virtio_state_ops(spk_virtio_rng_dev(g->rng)),
	                         spk_virtio_rng_dev(g->rng)) != 0)
		fail_msg("%s", spk_last_error());
	if (spk_snap_load_device(sf, "console",
	                         spk_virtio_state_ops(spk_virtio_console_dev(g->con)),
	                         spk_virtio_console_dev(g->con)) != 0)
		fail_msg("%s", spk_last_error());
	spk_snap_close(sf);
}

static void test_snapshot(void **state)
{
	struct fx *f = *state, *g;
	struct drv *d = &f->r;
	uint64_t tbl = d->bar + (cfg_rd(f, d->slot, d->msix + 4u, 4) & ~7u);
	void *a, *b;
	size_t la, lb;

	/* the rng with EVENT_IDX and MSI-X, one request served, one posted and not notified */
	init_dev(f, d, V1 | 1ull << 29, 8);
	mm_wr(f, tbl + 16, 4, 0xfee00000);
	mm_wr(f, tbl + 16 + 8, 4, 0x42);
	mm_wr(f, tbl + 16 + 12, 4, 1); /* masked: the interrupt stays pending */
	cfg_wr(f, d->slot, d->msix + 2u, 2, SPK_PCI_MSIX_ENABLE);
	mm_wr(f, d->common + QSEL, 2, 0);
	mm_wr(f, d->common + QMSIX, 2, 1);
	post(f, d, 0, 0x80000, 16, true);
	notify(f, d, 0);
	post(f, d, 0, 0x80100, 32, true);
	assert_int_equal(f->msis, 0);
	/* the console: input waiting for a buffer */
	init_dev(f, &f->c, V1, 8);
	assert_int_equal(spk_virtio_console_input(f->con, (const uint8_t *)"abc", 3), 3);
	cfg_wr(f, 0, SPK_PCI_COMMAND, 2, SPK_PCI_CMD_MEMORY); /* the bridge's config */
	spk_bus_write(f->bus, SPK_BUS_PIO, 0xcf8, 4, 0x80001810, NULL);

	a = save_machine(f, &la);
	/* a second machine, memory restored first, then the devices */
	assert_int_equal(setup((void **)&g), 0);
	memcpy(g->m.ram, f->m.ram, VT_RAM);
	load_machine(g, a, la);
	/* the restored machine takes the request that was posted (its kick may
	 * have been lost with the old process); the old one on its kick: then
	 * both save the same bytes */
	assert_int_equal(vt_used_idx(&g->m, qdesc(d, 0) + 0x2000), 2);
	notify(f, d, 0);
	free(a);
	a = save_machine(f, &la);
	b = save_machine(g, &lb);
	assert_int_equal(la, lb);
	assert_memory_equal(a, b, la);
	free(b);

	/* the same registers */
	for (unsigned off = 0; off < 0x3c; off++) {
		assert_int_equal(mm_rd(f, d->common + off, 1), mm_rd(g, g->r.common + off, 1));
		assert_int_equal(mm_rd(f, f->c.common + off, 1), mm_rd(g, g->c.common + off, 1));
	}
	for (unsigned off = 0; off < 0x40; off += 4)
		assert_int_equal(cfg_rd(f, d->slot, off, 4), cfg_rd(g, g->r.slot, off, 4));
	assert_int_equal(spk_virtio_rng_bytes(g->rng), 48);
	uint64_t pio = 0;
	spk_bus_read(g->bus, SPK_BUS_PIO, 0xcf8, 4, &pio, NULL);
	assert_int_equal(pio, 0x80001810);
	/* the same behaviour: the interrupt waits under the mask, and goes when unmasked */
	assert_int_equal(g->msis, 0);
	mm_wr(g, tbl + 16 + 12, 4, 0);
	assert_int_equal(g->msis, 1);
	assert_int_equal(g->last_msi.data, 0x42);
	assert_int_equal(spk_virtio_rng_bytes(g->rng), 48);
	/* console input that waited is delivered in the new machine */
	post(g, &g->c, 0, 0x91000, 8, true);
	notify(g, &g->c, 0);
	assert_int_equal(vt_used_idx(&g->m, qdesc(&g->c, 0) + 0x2000), 1);
	assert_memory_equal(g->m.ram + 0x91000, "abc", 3);

	/* hostile sections: refused, naming the device and field; nothing changes */
	struct spk_virtio *rv = spk_virtio_rng_dev(g->rng);
	uint8_t cfg[SPK_PCI_CFG_SIZE];
	spk_pci_cfg_get(spk_virtio_pci(rv), 0, cfg, sizeof(cfg));
	cfg[0] ^= 1; /* the vendor ID */
	const struct patch bad[] = {
	    {"q0.size", SPK_SNAP_U16, 3, NULL, 0, "not a power of two"},
	    {"q0.size", SPK_SNAP_U16, 512, NULL, 0, "512 is more than 256"},
	    {"q0.used_idx", SPK_SNAP_U16, 7, NULL, 0, "the used ring in guest memory says 2"},
	    {"q0.last_avail", SPK_SNAP_U16, 0x8000, NULL, 0, "behind the available index"},
	    {"q0.desc", SPK_SNAP_U64, 0x20001, NULL, 0, "aligned"},
	    {"q0.avail", SPK_SNAP_U64, VT_RAM - 2, NULL, 0, "not in guest RAM"},
	    {"q0.used", SPK_SNAP_U64, VT_ROM_GPA, NULL, 0, "used ring"},
	    {"q0.msix_vector", SPK_SNAP_U16, 2, NULL, 0, "the table has 2 vectors"},
	    {"q0.enabled", SPK_SNAP_U8, 2, NULL, 0, "2 is more than 1"},
	    {"status", SPK_SNAP_U8, 0x30, NULL, 0, "bits outside"},
	    {"status", SPK_SNAP_U8, 0x07, NULL, 0, "DRIVER_OK without FEATURES_OK"},
	    {"drv_features", SPK_SNAP_U64, 1ull << 40, NULL, 0, "does not offer"},
	    {"config_vector", SPK_SNAP_U16, 9, NULL, 0, "the table has 2 vectors"},
	    {"queues", SPK_SNAP_U16, 2, NULL, 0, "this virtio-rng (00:01.0) has 1"},
	    {"isr", SPK_SNAP_U8, 4, NULL, 0, "bits outside"},
	    {"transport", SPK_SNAP_U32, 2, NULL, 0, "version 2"},
	    {"pci.slot", SPK_SNAP_U8, 5, NULL, 0, "is in slot 1"},
	    {"pci.cfg", SPK_SNAP_BYTES, 0, cfg, sizeof(cfg), "byte 0x000"},
	    {"pci.msix_table", SPK_SNAP_BYTES, 0, cfg, 16, "16 bytes, not 32"},
	    {"pci.msix_vectors", SPK_SNAP_U16, 3, NULL, 0, "has 2"},
	    {"bytes", SPK_SNAP_U32, 3, NULL, 0, "a u32, not a u64"},
	};
	hostile("rng", spk_virtio_state_ops(rv), rv, bad, sizeof(bad) / sizeof(bad[0]));

	free(a);
	teardown((void **)&g);
	log_capture_start(&f->log);
}

/* net and vsock: a loop (run by hand), a socketpair for a TAP, a socket path */
struct nv {
	struct spk_evloop *loop;
	struct spk_virtio_net *net;
	struct spk_virtio_vsock *vs;
	int peer; /* the TAP's other end */
	char uds[64];
	struct drv n, v;
};

static void nv_new(struct fx *f, struct nv *x, uint32_t cid)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	x->peer = sv[1];
	assert_int_equal(spk_evloop_new("snap-test", &x->loop), 0);
	const struct spk_virtio_net_config nc = {
	    .pci = f->h, .slot = -1, .mem = f->m.mem, .loop = x->loop, .tap_fd = sv[0]};
	assert_int_equal(spk_virtio_net_new(&nc, &x->net), 0);
	snprintf(x->uds, sizeof(x->uds), "/tmp/spk-snap-vsock-%d-%u", (int)getpid(), cid);
	const struct spk_virtio_vsock_config vc = {.pci = f->h,
	                                           .slot = -1,
	                                           .mem = f->m.mem,
	                                           .loop = x->loop,
	                                           .guest_cid = cid,
	                                           .uds_path = x->uds};
	assert_int_equal(spk_virtio_vsock_new(&vc, &x->vs), 0);
	probe(f, &x->n, SPK_VIRTIO_ID_NET, 0x60000);
	probe(f, &x->v, SPK_VIRTIO_ID_VSOCK, 0xa0000);
}

static void nv_free(struct nv *x)
{
	spk_virtio_net_free(x->net);
	spk_virtio_vsock_free(x->vs);
	spk_evloop_free(x->loop);
	close(x->peer);
}

static void save_nv(struct fx *f, struct nv *x, void **buf, size_t *len)
{
	struct spk_snap_writer *w;
	struct spk_snap_header h;
	struct spk_virtio *nd = spk_virtio_net_dev(x->net), *vd = spk_virtio_vsock_dev(x->vs);
	const void *p;

	spk_snap_header_host(&h);
	assert_int_equal(spk_snap_writer_new(&w), 0);
	assert_int_equal(spk_snap_put_header(w, &h), 0);
	if (spk_snap_save_device(w, "net0", spk_virtio_state_ops(nd), nd) ||
	    spk_snap_save_device(w, "vsock", spk_virtio_state_ops(vd), vd))
		fail_msg("%s", spk_last_error());
	assert_int_equal(spk_snap_writer_finish(w, &p, len), 0);
	*buf = malloc(*len);
	memcpy(*buf, p, *len);
	spk_snap_writer_free(w);
}

static void test_snapshot_net_vsock(void **state)
{
	struct fx *f = *state, *g;
	struct nv a, b;
	struct spk_snap_file *sf;
	struct spk_virtio_vsock_stats st;
	void *buf;
	size_t len;
	uint32_t id, elen;

	nv_new(f, &a, 3);
	init_dev(f, &a.n, V1, 8);
	init_dev(f, &a.v, V1, 8);
	/* net: a receive buffer the device takes and holds while the TAP is quiet */
	post(f, &a.n, 0, 0x70000, 2048, true);
	notify(f, &a.n, 0);
	while (spk_evloop_run_once(a.loop, 0) > 0)
		;
	/* vsock: one event buffer waiting, as Linux's driver leaves them */
	post(f, &a.v, 2, 0x72000, 4, true);
	memset(f->m.ram + 0x72000, 0xee, 4);
	save_nv(f, &a, &buf, &len); /* the held chain went back: it saves */

	assert_int_equal(setup((void **)&g), 0);
	nv_new(g, &b, 4);
	memcpy(g->m.ram, f->m.ram, VT_RAM);
	assert_int_equal(spk_snap_open_buf(buf, len, &sf), 0);
	struct spk_virtio *nd = spk_virtio_net_dev(b.net), *vd = spk_virtio_vsock_dev(b.vs);
	if (spk_snap_load_device(sf, "net0", spk_virtio_state_ops(nd), nd) ||
	    spk_snap_load_device(sf, "vsock", spk_virtio_state_ops(vd), vd))
		fail_msg("%s", spk_last_error());
	spk_snap_close(sf);
	/* vsock: the guest is told its connections are gone (event id 0), its CID is the new one */
	assert_int_equal(vt_used_idx(&g->m, qdesc(&b.v, 2) + 0x2000), 1);
	vt_used_elem(&g->m, qdesc(&b.v, 2) + 0x2000, 8, 0, &id, &elen);
	assert_int_equal(elen, 4);
	assert_int_equal(vt_get32(g->m.ram + 0x72000), 0);
	spk_virtio_vsock_get_stats(b.vs, &st);
	assert_int_equal(st.transport_resets, 1);
	assert_int_equal(mm_rd(g, b.v.device, 4), 4);
	/* net: the receive buffer is taken again and a frame from the TAP arrives in it */
	uint8_t frame[12 + 60] = {0};
	memset(frame + 12, 0xab, 60);
	assert_int_equal(write(b.peer, frame, sizeof(frame)), sizeof(frame));
	while (spk_evloop_run_once(b.loop, 0) > 0)
		;
	notify(g, &b.n, 0);
	while (spk_evloop_run_once(b.loop, 0) > 0)
		;
	assert_int_equal(vt_used_idx(&g->m, qdesc(&b.n, 0) + 0x2000), 1);
	assert_int_equal(g->m.ram[0x70000 + 12], 0xab);

	/* a restore with no event buffer waits for one */
	struct nv c2;
	struct fx *h;
	assert_int_equal(setup((void **)&h), 0);
	nv_new(h, &c2, 5);
	memcpy(h->m.ram, f->m.ram, VT_RAM);
	vt_put16(h->m.ram + qdesc(&c2.v, 2) + 0x1000 + 2, 0); /* the driver had posted none */
	assert_int_equal(spk_snap_open_buf(buf, len, &sf), 0);
	vd = spk_virtio_vsock_dev(c2.vs);
	assert_int_equal(spk_snap_load_device(sf, "vsock", spk_virtio_state_ops(vd), vd), 0);
	spk_snap_close(sf);
	assert_int_equal(vt_used_idx(&h->m, qdesc(&c2.v, 2) + 0x2000), 0);
	post(h, &c2.v, 2, 0x72000, 4, true);
	notify(h, &c2.v, 2);
	while (spk_evloop_run_once(c2.loop, 0) > 0)
		;
	assert_int_equal(vt_used_idx(&h->m, qdesc(&c2.v, 2) + 0x2000), 1);
	assert_int_equal(vt_get32(h->m.ram + 0x72000), 0);
	/* a used index the guest's memory does not have: refused */
	assert_int_equal(spk_snap_open_buf(buf, len, &sf), 0);
	vt_put16(h->m.ram + qdesc(&c2.v, 0) + 0x2000 + 2, 9);
	assert_int_equal(spk_snap_load_device(sf, "vsock", spk_virtio_state_ops(vd), vd), -EINVAL);
	assert_non_null(strstr(spk_last_error(), "field 'q0.used_idx': 0, the used ring"));
	spk_snap_close(sf);

	free(buf);
	nv_free(&c2);
	teardown((void **)&h);
	nv_free(&b);
	teardown((void **)&g);
	nv_free(&a);
	log_capture_start(&f->log);
}

/* A device must bring its state ops: the transport refuses one without. */
/* The frame hook (the metadata service's way in): frames it matches never
 * reach the TAP, it gets a copy of each, and its frames fill receive
 * buffers before the TAP's. */
struct fake_hook {
	uint8_t got[256];
	size_t got_len;
	unsigned matched, taken;
	uint8_t reply[64];
	size_t reply_len;
	uint64_t due; /* CLOCK_MONOTONIC ms: hook_timer makes a reply then; 0: never */
	unsigned timer_calls;
};

static bool hook_match(void *o, const uint8_t *head, size_t len)
{
	struct fake_hook *h = o;

	h->matched++;
	return len >= 14 && head[0] == 0xaa;
}

static void hook_tx(void *o, const uint8_t *frame, size_t len)
{
	struct fake_hook *h = o;

	assert_true(len <= sizeof(h->got));
	memcpy(h->got, frame, len);
	h->got_len = len;
	h->taken++;
}

static size_t hook_rx(void *o, uint8_t *buf, size_t cap)
{
	struct fake_hook *h = o;
	size_t n = h->reply_len;

	if (!n || n > cap)
		return 0;
	memcpy(buf, h->reply, n);
	h->reply_len = 0;
	return n;
}

static uint64_t mono_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* A hook's timer as the MMDS's retransmissions use it: a frame for the
 * guest once h->due has come, the time left until then before. */
static uint64_t hook_timer(void *o)
{
	struct fake_hook *h = o;
	uint64_t now = mono_ms();

	h->timer_calls++;
	if (!h->due)
		return 0;
	if (now < h->due)
		return h->due - now;
	h->due = 0;
	memset(h->reply, 0xee, 42);
	h->reply_len = 42;
	return 0;
}

static void run_loop(struct spk_evloop *loop)
{
	while (spk_evloop_run_once(loop, 0) > 0)
		;
}

static void test_net_hook(void **state)
{
	struct fx *f = *state;
	struct spk_evloop *loop;
	struct spk_virtio_net *n;
	struct fake_hook h = {0};
	struct drv d;
	int sv[2];
	uint8_t buf[128];
	uint32_t id, len;
	const struct spk_virtio_net_hook hook = {&h, hook_match, hook_tx, hook_rx, NULL};

	assert_int_equal(spk_evloop_new("hook-test", &loop), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	const struct spk_virtio_net_config nc = {
	    .pci = f->h, .slot = -1, .mem = f->m.mem, .loop = loop, .tap_fd = sv[0]};
	assert_int_equal(spk_virtio_net_new(&nc, &n), 0);
	assert_int_equal(spk_virtio_net_set_hook(NULL, &hook), -EINVAL);
	const struct spk_virtio_net_hook half = {&h, hook_match, NULL, hook_rx, NULL};
	assert_int_equal(spk_virtio_net_set_hook(n, &half), -EINVAL);
	assert_int_equal(spk_virtio_net_set_hook(n, &hook), 0);
	probe(f, &d, SPK_VIRTIO_ID_NET, 0x60000);
	init_dev(f, &d, V1, 8);

	/* a frame for the hook: a copy to it, nothing to the TAP */
	memset(f->m.ram + 0x72000, 0, 12);
	memset(f->m.ram + 0x72000 + 12, 0xaa, 100);
	post(f, &d, 1, 0x72000, 112, false);
	notify(f, &d, 1);
	run_loop(loop);
	assert_int_equal(h.taken, 1);
	assert_int_equal(h.got_len, 100);
	assert_int_equal(h.got[99], 0xaa);
	assert_int_equal(read(sv[1], buf, sizeof(buf)), -1);
	assert_int_equal(vt_used_idx(&f->m, qdesc(&d, 1) + 0x2000), 1);
	/* another frame: to the TAP as before (the hook saw its head only) */
	memset(f->m.ram + 0x72100 + 12, 0xbb, 60);
	post(f, &d, 1, 0x72100, 72, false);
	notify(f, &d, 1);
	run_loop(loop);
	assert_int_equal(h.taken, 1);
	assert_int_equal(read(sv[1], buf, sizeof(buf)), 72);
	assert_int_equal(buf[12], 0xbb);
	/* the hook's frame and the TAP's: the hook's first, each with a header */
	memset(h.reply, 0xcc, 42);
	h.reply_len = 42;
	memset(buf, 0, 12);
	memset(buf + 12, 0xdd, 60);
	assert_int_equal(write(sv[1], buf, 72), 72);
	post(f, &d, 0, 0x70000, 2048, true);
	post(f, &d, 0, 0x70800, 2048, true);
	notify(f, &d, 0);
	run_loop(loop);
	assert_int_equal(vt_used_idx(&f->m, qdesc(&d, 0) + 0x2000), 2);
	vt_used_elem(&f->m, qdesc(&d, 0) + 0x2000, 8, 0, &id, &len);
	assert_int_equal(len, 12 + 42);
	assert_int_equal(f->m.ram[0x70000 + 10], 1); /* num_buffers */
	assert_int_equal(f->m.ram[0x70000 + 12], 0xcc);
	assert_int_equal(f->m.ram[0x70000 + 12 + 41], 0xcc);
	vt_used_elem(&f->m, qdesc(&d, 0) + 0x2000, 8, 1, &id, &len);
	assert_int_equal(len, 72);
	assert_int_equal(f->m.ram[0x70800 + 12], 0xdd);
	/* without the hook: everything to the TAP */
	assert_int_equal(spk_virtio_net_set_hook(n, NULL), 0);
	post(f, &d, 1, 0x72000, 112, false);
	notify(f, &d, 1);
	run_loop(loop);
	assert_int_equal(h.taken, 1);
	assert_int_equal(read(sv[1], buf, sizeof(buf)), 112);

	spk_virtio_net_free(n);
	spk_evloop_free(loop);
	close(sv[1]);
}

/* The hook's timer: asked after a frame reached the hook, armed on the
 * device's loop for the delay it returns, and its frames go to the guest
 * when it fires, with no kick from the driver (waited for, not timed).
 * The hook's frames to the guest count against the receive rate limit:
 * over budget they wait, and a new limit lets them through. */
static void test_net_hook_timer(void **state)
{
	struct fx *f = *state;
	struct spk_evloop *loop;
	struct spk_virtio_net *n;
	struct spk_virtio_net_stats st;
	struct fake_hook h = {0};
	struct drv d;
	int sv[2];
	const struct spk_virtio_net_hook hook = {&h, hook_match, hook_tx, hook_rx, hook_timer};
	const struct spk_rate_limit one = {.ops = {.size = 1, .refill_time_ms = 3600000}};
	const struct spk_rate_limit none = {0};
	uint64_t rx_used;

	assert_int_equal(spk_evloop_new("hook-timer", &loop), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	const struct spk_virtio_net_config nc = {.pci = f->h,
	                                         .slot = -1,
	                                         .mem = f->m.mem,
	                                         .loop = loop,
	                                         .tap_fd = sv[0],
	                                         .rx_rate_limit = one};
	assert_int_equal(spk_virtio_net_new(&nc, &n), 0);
	assert_int_equal(spk_virtio_net_set_hook(n, &hook), 0);
	probe(f, &d, SPK_VIRTIO_ID_NET, 0x60000);
	init_dev(f, &d, V1, 8);
	rx_used = qdesc(&d, 0) + 0x2000;
	post(f, &d, 0, 0x70000, 2048, true);
	post(f, &d, 0, 0x70800, 2048, true);
	notify(f, &d, 0);
	run_loop(loop);

	/* a frame to the hook; the hook wants its timer in 20 ms */
	h.due = mono_ms() + 20;
	memset(f->m.ram + 0x72000, 0, 12);
	memset(f->m.ram + 0x72000 + 12, 0xaa, 60);
	post(f, &d, 1, 0x72000, 72, false);
	notify(f, &d, 1);
	run_loop(loop);
	assert_int_equal(h.taken, 1);
	assert_true(h.timer_calls >= 1);
	assert_int_equal(vt_used_idx(&f->m, rx_used), 0);
	for (unsigned i = 0; i < 600 && vt_used_idx(&f->m, rx_used) == 0; i++)
		spk_evloop_run_once(loop, 100); /* the timerfd wakes it */
	assert_int_equal(vt_used_idx(&f->m, rx_used), 1);
	assert_int_equal(f->m.ram[0x70000 + 12], 0xee);
	spk_virtio_net_get_stats(n, &st);
	assert_int_equal(st.rx_rate.ops, 1);
	assert_int_equal(st.rx_rate.bytes, 42);

	/* the bucket is empty: the next frame of the hook waits */
	memset(h.reply, 0xdd, 50);
	h.reply_len = 50;
	notify(f, &d, 0);
	run_loop(loop);
	assert_int_equal(vt_used_idx(&f->m, rx_used), 1);
	spk_virtio_net_get_stats(n, &st);
	assert_true(st.rx_rate.throttled >= 1);
	assert_int_equal(spk_virtio_net_set_rate_limits(n, &none, NULL), 0);
	run_loop(loop);
	assert_int_equal(vt_used_idx(&f->m, rx_used), 2);
	assert_int_equal(f->m.ram[0x70800 + 12], 0xdd);

	spk_virtio_net_free(n);
	spk_evloop_free(loop);
	close(sv[1]);
}

/* virtio-net's MTU (Firecracker's `mtu`): offered with VIRTIO_NET_F_MTU
 * and in the config's mtu field when given; neither when not; below 68
 * refused. */
static void test_net_mtu(void **state)
{
	struct fx *f = *state;
	struct spk_evloop *loop;
	struct spk_virtio_net *a, *b, *bad;
	struct drv da, db;
	int sa[2], sb[2], sc[2];

	assert_int_equal(spk_evloop_new("mtu-test", &loop), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sa), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sb), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sc), 0);
	struct spk_virtio_net_config nc = {
	    .pci = f->h, .slot = -1, .mem = f->m.mem, .loop = loop, .tap_fd = sa[0], .mtu = 1400};
	assert_int_equal(spk_virtio_net_new(&nc, &a), 0);
	probe(f, &da, SPK_VIRTIO_ID_NET, 0x60000);
	nc.tap_fd = sc[0];
	nc.mtu = 67;
	assert_int_equal(spk_virtio_net_new(&nc, &bad), -EINVAL);
	close(sc[0]);
	mm_wr(f, da.common + DFSEL, 4, 0);
	assert_true(mm_rd(f, da.common + DF, 4) & (1u << 3));
	assert_int_equal(mm_rd(f, da.device + 10, 2), 1400);
	nc.tap_fd = sb[0];
	nc.mtu = 0;
	assert_int_equal(spk_virtio_net_new(&nc, &b), 0);
	probe_from(f, &db, SPK_VIRTIO_ID_NET, 0x70000, da.slot + 1);
	mm_wr(f, db.common + DFSEL, 4, 0);
	assert_false(mm_rd(f, db.common + DF, 4) & (1u << 3));
	assert_int_equal(mm_rd(f, db.device + 10, 2), 0);
	spk_virtio_net_free(a);
	spk_virtio_net_free(b);
	spk_evloop_free(loop);
	close(sa[1]);
	close(sb[1]);
	close(sc[1]);
}

static void test_state_ops_required(void **state)
{
	struct fx *f = *state;
	static const struct spk_virtio_ops no_state = {0};
	const struct spk_virtio_config c = {.name = "x",
	                                    .device_id = 99,
	                                    .num_queues = 1,
	                                    .queue_max = 8,
	                                    .ops = &no_state,
	                                    .pci = f->h,
	                                    .slot = -1,
	                                    .mem = f->m.mem};
	struct spk_virtio *vd = NULL;

	assert_int_equal(spk_virtio_new(&c, &vd), -EINVAL);
	assert_non_null(strstr(spk_last_error(), "no state ops"));
	assert_null(vd);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_identity_and_caps),
	    T(test_feature_negotiation),
	    T(test_rng),
	    T(test_rng_rate_limit),
	    T(test_rng_msix),
	    T(test_bus_master_off),
	    T(test_console),
	    T(test_violation_needs_reset),
	    T(test_bad_queue_setup),
	    T(test_pci_cfg_window),
	    T(test_common_any_width),
	    T(test_hostile),
	    T(test_snapshot),
	    T(test_snapshot_net_vsock),
	    T(test_net_mtu),
	    T(test_net_hook),
	    T(test_net_hook_timer),
	    T(test_state_ops_required),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
