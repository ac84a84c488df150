// SPDX-License-Identifier: Apache-2.0
/*
 * virtio-balloon without KVM: a driver written here does what Linux's
 * virtio_balloon does, through a real bus and PCI host, on a guest RAM
 * that is a private anonymous mapping (as a VM's is), so a released page
 * really reads back as zeros. Then what a hostile driver can do: PFNs
 * outside RAM, in the read-only region, at the top of the 32-bit range,
 * more PFNs than a chain may carry, odd lengths, buffers that wrap,
 * statistics of the wrong size, queues the features did not give.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>

#include <sparkler/pci.h>
#include <sparkler/platform.h>
#include <sparkler/virtio.h>
#include <sparkler/virtio_balloon.h>

#include "../devices/devtest.h"
#include "../snapshot/snaptest.h"
#include "vqtest.h"

#define QS       16
#define RING     0x20000ull /* queue q: desc, avail, used at RING + 0x3000 q + 0, 0x1000, 0x2000 */
#define DATA     0x40000ull /* buffers: up to the end of RAM */
#define PG       4096u
#define V1       (1ull << 32)
#define F_STATS  (1ull << SPK_BALLOON_F_STATS_VQ)
#define F_OOM    (1ull << SPK_BALLOON_F_DEFLATE_ON_OOM)
#define F_REPORT (1ull << SPK_BALLOON_F_REPORTING)
#define F_HINT   (1ull << SPK_BALLOON_F_FREE_PAGE_HINT)

enum { DFSEL = 0x00, DF = 0x04, GFSEL = 0x08, GF = 0x0c, NUMQ = 0x12, STATUS = 0x14 };
enum { QSEL = 0x16, QSIZE_ = 0x18, QENABLE = 0x1c, QDESC = 0x20, QDRV = 0x28, QDEV = 0x30 };

struct fx {
	struct vt_mem m;
	struct spk_bus *bus;
	struct spk_pci_host *h;
	struct fake_irq irq;
	struct spk_virtio_balloon *b;
	unsigned slot;
	uint64_t common, notify, device;
	uint32_t notify_mult;
	uint16_t next_desc[5];
	struct log_capture log;
};

/* ---- a driver ---- */

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

static uint32_t cfg_rd(struct fx *f, unsigned reg, unsigned w)
{
	return spk_pci_host_cfg_read(f->h, f->slot, reg, w);
}

static void probe(struct fx *f)
{
	uint64_t bar;

	for (f->slot = 1; f->slot < 32; f->slot++)
		if (spk_pci_host_cfg_read(f->h, f->slot, 0, 4) == ((0x1040u + 5) << 16 | 0x1af4))
			break;
	assert_true(f->slot < 32);
	bar = cfg_rd(f, SPK_PCI_BAR0, 4) & ~0xfu;
	bar |= (uint64_t)cfg_rd(f, SPK_PCI_BAR0 + 4, 4) << 32;
	spk_pci_host_cfg_write(f->h, f->slot, SPK_PCI_COMMAND, 2,
	                       SPK_PCI_CMD_MEMORY | SPK_PCI_CMD_MASTER);
	for (uint8_t at = (uint8_t)cfg_rd(f, SPK_PCI_CAP_PTR, 1); at;
	     at = (uint8_t)cfg_rd(f, at + 1u, 1)) {
		uint64_t off = cfg_rd(f, at + 8u, 4);

		if (cfg_rd(f, at, 1) != SPK_PCI_CAP_ID_VENDOR)
			continue;
		switch (cfg_rd(f, at + 3u, 1)) {
		case 1:
			f->common = bar + off;
			break;
		case 2:
			f->notify = bar + off;
			f->notify_mult = cfg_rd(f, at + 16u, 4);
			break;
		case 4:
			f->device = bar + off;
			break;
		}
	}
	assert_true(f->common && f->notify && f->device);
}

static uint64_t offered(struct fx *f)
{
	mm_wr(f, f->common + DFSEL, 4, 0);
	uint64_t lo = mm_rd(f, f->common + DF, 4);
	mm_wr(f, f->common + DFSEL, 4, 1);
	return lo | mm_rd(f, f->common + DF, 4) << 32;
}

static uint8_t status(struct fx *f)
{
	return (uint8_t)mm_rd(f, f->common + STATUS, 1);
}

/* Negotiate accept and set up nq queues of size QS. */
static void init_dev(struct fx *f, uint64_t accept, unsigned nq)
{
	mm_wr(f, f->common + STATUS, 1, 0);
	memset(f->m.ram + RING, 0, 0x3000 * 5);
	memset(f->next_desc, 0, sizeof(f->next_desc));
	mm_wr(f, f->common + STATUS, 1, 1 | 2);
	mm_wr(f, f->common + GFSEL, 4, 0);
	mm_wr(f, f->common + GF, 4, (uint32_t)accept);
	mm_wr(f, f->common + GFSEL, 4, 1);
	mm_wr(f, f->common + GF, 4, (uint32_t)(accept >> 32));
	mm_wr(f, f->common + STATUS, 1, 1 | 2 | 8);
	assert_true(status(f) & 8);
	for (unsigned q = 0; q < nq; q++) {
		uint64_t base = RING + 0x3000ull * q;

		mm_wr(f, f->common + QSEL, 2, q);
		mm_wr(f, f->common + QSIZE_, 2, QS);
		mm_wr(f, f->common + QDESC, 8, base);
		mm_wr(f, f->common + QDRV, 8, base + 0x1000);
		mm_wr(f, f->common + QDEV, 8, base + 0x2000);
		mm_wr(f, f->common + QENABLE, 2, 1);
	}
	mm_wr(f, f->common + STATUS, 1, 1 | 2 | 8 | 4);
	assert_int_equal(status(f), 1 | 2 | 8 | 4);
}

struct seg {
	uint64_t addr;
	uint32_t len;
	bool write;
};

/* Publish a chain of n segments on queue q and notify. */
static void send(struct fx *f, unsigned q, const struct seg *s, unsigned n)
{
	uint64_t base = RING + 0x3000ull * q;
	uint16_t head = f->next_desc[q];

	for (unsigned i = 0; i < n; i++) {
		uint16_t d = (uint16_t)((head + i) % QS);

		vt_desc(&f->m, base, d, s[i].addr, s[i].len,
		        (uint16_t)((i + 1 < n ? SPK_VIRTQ_DESC_F_NEXT : 0) |
		                   (s[i].write ? SPK_VIRTQ_DESC_F_WRITE : 0)),
		        (uint16_t)((d + 1) % QS));
	}
	f->next_desc[q] = (uint16_t)((head + n) % QS);
	vt_avail(&f->m, base + 0x1000, QS, head);
	mm_wr(f, f->notify + (uint64_t)q * f->notify_mult, 2, q);
}

static uint16_t used(struct fx *f, unsigned q)
{
	return vt_used_idx(&f->m, RING + 0x3000ull * q + 0x2000);
}

/* PFNs at gpa, then one chain of them on queue q. */
static void pfns(struct fx *f, unsigned q, uint64_t gpa, const uint32_t *p, unsigned n)
{
	memcpy(f->m.ram + gpa, p, 4ull * n);
	send(f, q, &(struct seg){gpa, 4 * n, false}, 1);
}

static struct spk_virtio_balloon_stats stats(struct fx *f)
{
	struct spk_virtio_balloon_stats st;

	spk_virtio_balloon_get_stats(f->b, &st);
	return st;
}

static bool page_is(struct fx *f, uint64_t gpa, uint8_t v)
{
	for (unsigned i = 0; i < PG; i++)
		if (f->m.ram[gpa + i] != v)
			return false;
	return true;
}

/* ---- fixture ---- */

static struct fx *make_fx_hint(uint32_t target, uint32_t interval, bool report, bool hint)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	/* RAM as a VM has it: a private anonymous mapping */
	f->m.ram = mmap(NULL, VT_RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(f->m.ram != MAP_FAILED);
	f->m.rom = calloc(1, VT_ROM);
	assert_int_equal(spk_mem_new(&f->m.mem), 0);
	assert_int_equal(spk_mem_add(f->m.mem, 0, VT_RAM, SPK_MEM_RAM, f->m.ram, "ram"), 0);
	assert_int_equal(
	    spk_mem_add(f->m.mem, VT_ROM_GPA, VT_ROM, SPK_MEM_READONLY, f->m.rom, "rom"), 0);
	assert_int_equal(spk_bus_new(&f->bus), 0);
	const struct spk_pci_host_config hc = {
	    .bus = f->bus,
	    .ecam = SPK_PC_PCI_ECAM,
	    .mmio_start = SPK_PC_PCI_MMIO_START,
	    .mmio_size = SPK_PC_PCI_MMIO_SIZE,
	    .intx = fake_line(&f->irq, 16),
	};
	assert_int_equal(spk_pci_host_new(&hc, &f->h), 0);
	const struct spk_virtio_balloon_config bc = {.pci = f->h,
	                                             .slot = -1,
	                                             .mem = f->m.mem,
	                                             .target_pages = target,
	                                             .deflate_on_oom = true,
	                                             .stats_interval_s = interval,
	                                             .free_page_reporting = report,
	                                             .free_page_hinting = hint};
	assert_int_equal(spk_virtio_balloon_new(&bc, &f->b), 0);
	probe(f);
	log_capture_start(&f->log);
	return f;
}

static struct fx *make_fx(uint32_t target, uint32_t interval, bool report)
{
	return make_fx_hint(target, interval, report, false);
}

static void free_fx(struct fx *f)
{
	log_capture_stop();
	spk_virtio_balloon_free(f->b);
	spk_pci_host_free(f->h);
	spk_bus_free(f->bus);
	spk_mem_free(f->m.mem);
	munmap(f->m.ram, VT_RAM);
	free(f->m.rom);
	free(f);
}

static int setup(void **state)
{
	*state = make_fx(100, 1, true);
	return 0;
}

static int teardown(void **state)
{
	free_fx(*state);
	return 0;
}

/* ---- tests ---- */

static void test_identity_and_config(void **state)
{
	struct fx *f = *state, *g = make_fx(7, 0, false);

	assert_int_equal(cfg_rd(f, SPK_PCI_SUBSYS_ID, 2), SPK_VIRTIO_ID_BALLOON);
	assert_int_equal(offered(f) & (F_STATS | F_OOM | F_REPORT | 1), F_STATS | F_OOM | F_REPORT);
	assert_int_equal(mm_rd(f, f->common + NUMQ, 2), 4);
	/* options off: neither statistics nor reporting offered, two queues */
	assert_int_equal(offered(g) & (F_STATS | F_REPORT), 0);
	assert_int_equal(mm_rd(g, g->common + NUMQ, 2), 2);
	assert_int_equal(mm_rd(g, g->device, 4), 7);
	free_fx(g);

	init_dev(f, V1 | F_STATS | F_REPORT, 4);
	assert_int_equal(mm_rd(f, f->device, 4), 100);
	/* the driver writes actual, at any width; num_pages is the device's */
	mm_wr(f, f->device + 4, 4, 42);
	mm_wr(f, f->device + 5, 1, 1);
	mm_wr(f, f->device + 0, 4, 999999);
	mm_wr(f, f->device + 12, 4, 5);
	assert_int_equal(mm_rd(f, f->device + 4, 4), 42 | 1 << 8);
	assert_int_equal(mm_rd(f, f->device, 4), 100);
	assert_int_equal(stats(f).actual_pages, 42 | 1 << 8);
	/* a new target: the config generation moves (a config interrupt) */
	uint8_t gen = (uint8_t)mm_rd(f, f->common + 0x15, 1);
	assert_int_equal(spk_virtio_balloon_set_target(f->b, 4096), 0);
	assert_int_equal(mm_rd(f, f->device, 4), 4096);
	assert_int_not_equal((uint8_t)mm_rd(f, f->common + 0x15, 1), gen);
	assert_int_equal(stats(f).target_pages, 4096);
	/* a reset forgets actual */
	init_dev(f, V1, 2);
	assert_int_equal(mm_rd(f, f->device + 4, 4), 0);
}

static void test_inflate_releases_pages(void **state)
{
	struct fx *f = *state;
	uint32_t p[20];

	init_dev(f, V1 | F_STATS | F_REPORT, 4);
	memset(f->m.ram + 0x80000, 0xab, 16 * PG);
	memset(f->m.ram + 0x90000, 0xcd, PG);
	for (unsigned i = 0; i < 16; i++)
		p[i] = 0x80 + i;     /* one run of 16 pages */
	p[16] = 0x100;               /* the read-only region after RAM */
	p[17] = 0xffffffff;          /* far outside, at the top of the 32-bit range */
	p[18] = 0x100 + VT_ROM / PG; /* nothing there */
	p[19] = 0x90;
	pfns(f, 0, DATA, p, 20);
	assert_int_equal(used(f, 0), 1);
	for (unsigned i = 0; i < 16; i++)
		assert_true(page_is(f, 0x80000 + i * PG, 0));
	assert_true(page_is(f, 0x90000, 0));
	assert_true(page_is(f, 0x91000, 0)); /* untouched */
	struct spk_virtio_balloon_stats st = stats(f);
	assert_int_equal(st.inflated_pages, 17);
	assert_int_equal(st.bad_pfns, 3);
	assert_int_equal(st.inflate_chains, 1);
	assert_int_equal(st.discard_fails, 0);
	assert_int_equal(f->log.warnings, 3);
	assert_non_null(strstr(f->log.last, "not a page of guest RAM"));
	/* deflate: checked and counted, nothing released */
	memset(f->m.ram + 0xa0000, 0x11, PG);
	p[0] = 0xa0;
	p[1] = 0x7fffffff;
	pfns(f, 1, DATA + 0x100, p, 2);
	assert_int_equal(used(f, 1), 1);
	assert_true(page_is(f, 0xa0000, 0x11));
	st = stats(f);
	assert_int_equal(st.deflated_pages, 1);
	assert_int_equal(st.bad_pfns, 4);
	assert_int_equal(st.deflate_chains, 1);
	assert_true(spk_virtio_running(spk_virtio_balloon_dev(f->b)));
}

static void test_hostile_chains(void **state)
{
	struct fx *f = *state;
	uint32_t p[2] = {0x50, 0x51};

	init_dev(f, V1, 2);
	/* 7 bytes: one whole PFN, the rest ignored */
	memset(f->m.ram + 0x50000, 0xee, 2 * PG);
	memcpy(f->m.ram + DATA, p, 8);
	send(f, 0, &(struct seg){DATA, 7, false}, 1);
	assert_int_equal(used(f, 0), 1);
	assert_true(page_is(f, 0x50000, 0));
	assert_true(page_is(f, 0x51000, 0xee));
	/* a writable buffer in an inflate chain is not read */
	send(f, 0, &(struct seg){DATA, 8, true}, 1);
	assert_int_equal(used(f, 0), 2);
	assert_true(page_is(f, 0x51000, 0xee));
	assert_int_equal(stats(f).inflated_pages, 1);
	/* 128 Ki PFNs in one chain (4 buffers of 128 KiB): the first 64 Ki
	 * are taken, the rest counted and ignored; the work is bounded */
	uint32_t *many = (uint32_t *)(f->m.ram + 0x80000);
	for (unsigned i = 0; i < 0x20000; i++)
		many[i] = 0x60; /* the same page over and over */
	memset(f->m.ram + 0x60000, 0x22, PG);
	struct seg big[4];
	for (unsigned i = 0; i < 4; i++)
		big[i] = (struct seg){0x80000 + i * 0x20000ull, 0x20000, false};
	send(f, 0, big, 4);
	assert_int_equal(used(f, 0), 3);
	struct spk_virtio_balloon_stats st = stats(f);
	assert_int_equal(st.inflated_pages, 1 + SPK_BALLOON_MAX_PFNS_PER_CHAIN);
	assert_int_equal(st.ignored_pfns, 0x20000 - SPK_BALLOON_MAX_PFNS_PER_CHAIN);
	assert_true(page_is(f, 0x60000, 0));
	/* a buffer whose end wraps around 2^64: the transport refuses the
	 * chain, the device needs a reset, nothing crashes or is released */
	memset(f->m.ram + 0x70000, 0x33, PG);
	send(f, 0, &(struct seg){0xfffffffffffff000ull, 0x2000, false}, 1);
	assert_true(status(f) & SPK_VIRTIO_S_NEEDS_RESET);
	assert_true(page_is(f, 0x70000, 0x33));
	/* reset, and it works again */
	init_dev(f, V1, 2);
	p[0] = 0x70;
	pfns(f, 0, DATA, p, 1);
	assert_true(page_is(f, 0x70000, 0));
}

/* One statistics entry: le16 tag, le64 value, packed. */
static void stat_at(struct fx *f, uint64_t gpa, unsigned i, uint16_t tag, uint64_t v)
{
	memcpy(f->m.ram + gpa + 10 * i, &tag, 2);
	memcpy(f->m.ram + gpa + 10 * i + 2, &v, 8);
}

static void test_stats(void **state)
{
	struct fx *f = *state;
	struct spk_virtio_balloon_stats st;

	assert_int_equal(spk_virtio_balloon_poll_stats(f->b), 0); /* not running */
	init_dev(f, V1 | F_STATS, 3);
	assert_int_equal(spk_virtio_balloon_poll_stats(f->b), 0); /* no buffer yet */
	stat_at(f, DATA, 0, SPK_BALLOON_S_MEMFREE, 1234);
	stat_at(f, DATA, 1, SPK_BALLOON_S_MEMTOT, 5678);
	stat_at(f, DATA, 2, 99, 1); /* a statistic this device does not know */
	stat_at(f, DATA, 3, SPK_BALLOON_S_DIRECT_RECLAIM, 9);
	send(f, 2, &(struct seg){DATA, 40, false}, 1);
	assert_int_equal(used(f, 2), 0); /* held until the interval */
	st = stats(f);
	assert_int_equal(st.have, 1u << 4 | 1u << 5 | 1u << 15);
	assert_int_equal(st.value[SPK_BALLOON_S_MEMFREE], 1234);
	assert_int_equal(st.value[SPK_BALLOON_S_MEMTOT], 5678);
	assert_int_equal(st.value[SPK_BALLOON_S_DIRECT_RECLAIM], 9);
	assert_int_equal(st.stats_updates, 1);
	/* the interval: the buffer goes back with nothing written */
	assert_int_equal(spk_virtio_balloon_poll_stats(f->b), 1);
	assert_int_equal(used(f, 2), 1);
	uint32_t id, len;
	vt_used_elem(&f->m, RING + 0x3000 * 2 + 0x2000, QS, 0, &id, &len);
	assert_int_equal(len, 0);
	assert_int_equal(spk_virtio_balloon_poll_stats(f->b), 0);
	/* a wrong size keeps the old values; two buffers at once: the older
	 * goes back, the newer is held */
	send(f, 2, &(struct seg){DATA, 7, false}, 1);
	st = stats(f);
	assert_int_equal(st.stats_update_fails, 1);
	assert_int_equal(st.value[SPK_BALLOON_S_MEMFREE], 1234);
	stat_at(f, DATA + 0x100, 0, SPK_BALLOON_S_MEMFREE, 1);
	send(f, 2, &(struct seg){DATA + 0x100, 10, false}, 1);
	assert_int_equal(used(f, 2), 2);
	assert_int_equal(stats(f).value[SPK_BALLOON_S_MEMFREE], 1);
	/* a huge buffer: at most 64 entries read, no failure */
	send(f, 2, &(struct seg){0x80000, 0x40000 - 4, false}, 1);
	assert_int_equal(used(f, 2), 3);
	assert_int_equal(stats(f).stats_updates, 3);
	/* the interval may change, but not to 0 */
	assert_int_equal(spk_virtio_balloon_set_stats_interval(f->b, 7), 0);
	assert_int_equal(spk_virtio_balloon_stats_interval(f->b), 7);
	assert_int_equal(spk_virtio_balloon_set_stats_interval(f->b, 0), -EINVAL);
	assert_int_equal(spk_virtio_balloon_set_stats_interval(f->b, 65536), -EINVAL);
	assert_int_equal(spk_virtio_balloon_stats_interval(f->b), 7);
}

static void test_stats_off(void **state)
{
	struct fx *f = make_fx(0, 0, true);

	(void)state;
	assert_int_equal(spk_virtio_balloon_poll_stats(f->b), -EINVAL);
	assert_int_equal(spk_virtio_balloon_set_stats_interval(f->b, 1), -EINVAL);
	assert_non_null(strstr(spk_last_error(), "cannot be turned on"));
	assert_int_equal(spk_virtio_balloon_set_stats_interval(f->b, 0), 0);
	/* without statistics, reporting is queue 2 */
	init_dev(f, V1 | F_REPORT, 3);
	memset(f->m.ram + 0x80000, 0x44, 0x10000);
	send(f, 2, &(struct seg){0x80000, 0x10000, true}, 1);
	assert_int_equal(used(f, 2), 1);
	assert_true(page_is(f, 0x80000, 0) && page_is(f, 0x8f000, 0));
	assert_int_equal(stats(f).reports, 1);
	assert_int_equal(stats(f).reported_bytes, 0x10000);
	free_fx(f);
}

static void test_reporting(void **state)
{
	struct fx *f = *state;

	/* statistics and reporting: reporting is queue 3 */
	init_dev(f, V1 | F_STATS | F_REPORT, 4);
	memset(f->m.ram + 0x80000, 0x55, 0x20000);
	/* two ranges, one not page-aligned: only whole pages go */
	struct seg s[2] = {{0x80000, 0x8000, true}, {0x90800, 0x2000, true}};
	send(f, 3, s, 2);
	assert_int_equal(used(f, 3), 1);
	assert_true(page_is(f, 0x80000, 0) && page_is(f, 0x87000, 0));
	assert_true(page_is(f, 0x88000, 0x55));
	assert_int_equal(f->m.ram[0x90800], 0x55); /* the part page before */
	assert_true(page_is(f, 0x91000, 0));
	assert_int_equal(f->m.ram[0x92000], 0x55);
	assert_int_equal(stats(f).reported_bytes, 0x9000);
	/* a readable buffer on the reporting queue frees nothing */
	send(f, 3, &(struct seg){0x98000, 0x1000, false}, 1);
	assert_true(page_is(f, 0x98000, 0x55));
	/* statistics offered, not taken: nothing to poll */
	init_dev(f, V1 | F_REPORT, 3);
	assert_int_equal(spk_virtio_balloon_poll_stats(f->b), 0);
	/* without REPORTING negotiated, queue 3 does nothing */
	init_dev(f, V1 | F_STATS, 4);
	send(f, 3, &(struct seg){0x98000, 0x1000, true}, 1);
	assert_int_equal(used(f, 3), 0);
	assert_true(page_is(f, 0x98000, 0x55));
}

static uint32_t cfg_cmd(struct fx *f)
{
	return (uint32_t)mm_rd(f, f->device + 8, 4);
}

/* A hint-queue chain holding one command id. */
static void hint_id(struct fx *f, unsigned q, uint64_t gpa, uint32_t id)
{
	memcpy(f->m.ram + gpa, &id, 4);
	send(f, q, &(struct seg){gpa, 4, false}, 1);
}

/*
 * Free page hinting as Linux's driver runs it: the host starts a run (a
 * new command id in the config), the driver sends the id, then blocks of
 * free pages it holds (released here), then STOP; with ack_on_stop the
 * host answers DONE at once (the driver may reuse its pages). Queue
 * numbering with stats, hinting and reporting: 2, 3, 4.
 */
static void test_hinting(void **state)
{
	struct fx *f = make_fx_hint(0, 1, true, true);
	uint32_t host, guest;

	(void)state;
	assert_int_equal(offered(f) & F_HINT, F_HINT);
	assert_int_equal(mm_rd(f, f->common + NUMQ, 2), 5);
	init_dev(f, V1 | F_STATS | F_HINT | F_REPORT, 5);
	assert_int_equal(cfg_cmd(f), 0);
	uint8_t gen = (uint8_t)mm_rd(f, f->common + 0x15, 1);
	assert_int_equal(spk_virtio_balloon_hint_start(f->b, true), 0);
	assert_int_equal(cfg_cmd(f), 2);
	assert_int_not_equal((uint8_t)mm_rd(f, f->common + 0x15, 1), gen);
	hint_id(f, 3, DATA, 2);
	assert_int_equal(spk_virtio_balloon_hint_status(f->b, &host, &guest), 0);
	assert_int_equal(host, 2);
	assert_int_equal(guest, 2);
	memset(f->m.ram + 0x80000, 0x77, 0x20000);
	send(f, 3, &(struct seg){0x80000, 0x10000, true}, 1);
	send(f, 3, &(struct seg){0x90000, 0x800, true}, 1); /* no whole page: nothing */
	assert_true(page_is(f, 0x80000, 0) && page_is(f, 0x8f000, 0));
	assert_int_equal(f->m.ram[0x90000], 0x77);
	assert_int_equal(stats(f).hinted_bytes, 0x10000);
	assert_int_equal(stats(f).hints, 2);
	/* a short id (3 bytes) changes nothing; STOP: DONE at once */
	send(f, 3, &(struct seg){DATA, 3, false}, 1);
	spk_virtio_balloon_hint_status(f->b, &host, &guest);
	assert_int_equal(guest, 2);
	hint_id(f, 3, DATA + 0x10, 0);
	spk_virtio_balloon_hint_status(f->b, &host, &guest);
	assert_int_equal(guest, 0);
	assert_int_equal(host, 1);
	assert_int_equal(cfg_cmd(f), 1);
	assert_int_equal(used(f, 3), 5);
	/* a second run: a new id; without ack_on_stop the host says DONE itself */
	assert_int_equal(spk_virtio_balloon_hint_start(f->b, false), 0);
	assert_int_equal(cfg_cmd(f), 3);
	hint_id(f, 3, DATA + 0x20, 3);
	hint_id(f, 3, DATA + 0x30, 0);
	spk_virtio_balloon_hint_status(f->b, &host, &guest);
	assert_int_equal(host, 3);
	assert_int_equal(spk_virtio_balloon_hint_stop(f->b), 0);
	assert_int_equal(cfg_cmd(f), 1);
	/* reporting is queue 4 here */
	memset(f->m.ram + 0xa0000, 0x12, PG);
	send(f, 4, &(struct seg){0xa0000, PG, true}, 1);
	assert_true(page_is(f, 0xa0000, 0));
	assert_int_equal(stats(f).reports, 1);
	/* hinting not offered: refused */
	struct fx *g = make_fx(0, 0, false);
	assert_int_equal(spk_virtio_balloon_hint_start(g->b, true), -EINVAL);
	assert_int_equal(spk_virtio_balloon_hint_stop(g->b), -EINVAL);
	assert_int_equal(spk_virtio_balloon_hint_status(g->b, &host, &guest), -EINVAL);
	assert_int_equal(spk_virtio_balloon_hint_status(f->b, NULL, &guest), -EINVAL);
	assert_int_equal(spk_virtio_balloon_hint_start(NULL, true), -EINVAL);
	free_fx(g);
	free_fx(f);
}

static void test_snapshot(void **state)
{
	struct fx *f = *state, *g = make_fx(1, 3, true);
	struct spk_virtio *vf = spk_virtio_balloon_dev(f->b), *vg = spk_virtio_balloon_dev(g->b);

	init_dev(f, V1 | F_STATS | F_REPORT, 4);
	mm_wr(f, f->device + 4, 4, 77);
	stat_at(f, DATA, 0, SPK_BALLOON_S_AVAIL, 4242);
	send(f, 2, &(struct seg){DATA, 10, false}, 1);
	/* the held statistics buffer goes back untouched for the save */
	memcpy(g->m.ram, f->m.ram, VT_RAM);
	round_trip("balloon", spk_virtio_state_ops(vf), vf, vg);
	struct spk_virtio_balloon_stats st = stats(g);
	assert_int_equal(st.target_pages, 100);
	assert_int_equal(st.actual_pages, 77);
	assert_int_equal(st.value[SPK_BALLOON_S_AVAIL], 4242);
	assert_int_equal(spk_virtio_balloon_stats_interval(g->b), 1);
	/* the loaded device takes the buffer again at its interval */
	memcpy(g->m.ram, f->m.ram, VT_RAM);
	assert_int_equal(spk_virtio_balloon_poll_stats(g->b), 1);
	assert_int_equal(used(g, 2), 1);
	/* and the loaded device still releases pages on queue 0 */
	memset(g->m.ram + 0x80000, 0x66, PG);
	uint32_t p = 0x80;
	memcpy(g->m.ram + DATA + 0x200, &p, 4);
	g->next_desc[0] = 0;
	send(g, 0, &(struct seg){DATA + 0x200, 4, false}, 1);
	assert_true(page_is(g, 0x80000, 0));
	free_fx(g);
	/* statistics off in the file, on in the device: refused */
	struct fx *h = make_fx(0, 0, false);
	void *bytes;
	size_t len;
	struct spk_virtio *vh = spk_virtio_balloon_dev(h->b);
	struct spk_snap_file *sf = save_one("balloon", spk_virtio_state_ops(vh), vh, &bytes, &len);
	assert_int_not_equal(spk_snap_load_device(sf, "balloon", spk_virtio_state_ops(vf), vf), 0);
	spk_snap_close(sf);
	free(bytes);
	free_fx(h);
}

static void test_nulls(void **state)
{
	struct spk_virtio_balloon_stats st;
	struct spk_virtio_balloon *b = (void *)1;

	(void)state;
	assert_int_equal(spk_virtio_balloon_new(NULL, &b), -EINVAL);
	assert_int_equal(spk_virtio_balloon_new(&(struct spk_virtio_balloon_config){0}, NULL),
	                 -EINVAL);
	assert_int_equal(spk_virtio_balloon_new(
	                     &(struct spk_virtio_balloon_config){.stats_interval_s = 65536}, &b),
	                 -EINVAL);
	assert_ptr_equal(b, (void *)1);
	spk_virtio_balloon_free(NULL);
	assert_null(spk_virtio_balloon_dev(NULL));
	assert_int_equal(spk_virtio_balloon_set_target(NULL, 1), -EINVAL);
	assert_int_equal(spk_virtio_balloon_set_stats_interval(NULL, 1), -EINVAL);
	assert_int_equal(spk_virtio_balloon_stats_interval(NULL), 0);
	assert_int_equal(spk_virtio_balloon_poll_stats(NULL), -EINVAL);
	memset(&st, 0xff, sizeof(st));
	spk_virtio_balloon_get_stats(NULL, &st);
	assert_int_equal(st.inflated_pages, 0);
	spk_virtio_balloon_get_stats(NULL, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_identity_and_config, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_inflate_releases_pages, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_chains, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
	    cmocka_unit_test(test_stats_off),
	    cmocka_unit_test_setup_teardown(test_reporting, setup, teardown),
	    cmocka_unit_test(test_hinting),
	    cmocka_unit_test_setup_teardown(test_snapshot, setup, teardown),
	    cmocka_unit_test(test_nulls),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
