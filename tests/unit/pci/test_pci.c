// SPDX-License-Identifier: Apache-2.0
/*
 * PCI without KVM: the host bridge and test devices on a real bus, driven
 * the way a guest drives them (ports 0xCF8/0xCFC, ECAM, the BAR window),
 * with interrupts going to fakes.
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

#include "../devices/devtest.h"

#define WIN   SPK_PC_PCI_MMIO_START
#define WSIZE SPK_PC_PCI_MMIO_SIZE
#define ECAM  SPK_PC_PCI_ECAM

/* ---- fixture -------------------------------------------------------------------- */

struct tdev {
	struct spk_pci_dev *d;
	unsigned slot;
	unsigned reads, writes, moves;
	unsigned last_bar;
	uint64_t last_off, last_val, moved_to;
};

struct fx {
	struct spk_bus *bus;
	struct spk_pci_host *h;
	struct fake_irq irq;
	unsigned msis;
	struct spk_msi last_msi;
	struct tdev a, b;
	struct log_capture log;
};

static uint64_t t_read(void *opaque, unsigned bar, uint64_t off, unsigned width)
{
	struct tdev *t = opaque;

	t->reads++;
	t->last_bar = bar;
	t->last_off = off;
	return 0x1000 * bar + off;
}

static void t_write(void *opaque, unsigned bar, uint64_t off, unsigned width, uint64_t v)
{
	struct tdev *t = opaque;

	t->writes++;
	t->last_bar = bar;
	t->last_off = off;
	t->last_val = v;
}

static void t_moved(void *opaque, unsigned bar, uint64_t addr)
{
	struct tdev *t = opaque;

	t->moves++;
	t->moved_to = addr;
}

static const struct spk_pci_dev_ops t_ops = {
    .bar_read = t_read, .bar_write = t_write, .bar_moved = t_moved};

static void on_msi(void *ctx, const struct spk_msi *msi)
{
	struct fx *f = ctx;

	f->msis++;
	f->last_msi = *msi;
}

/* Device a: 32-bit BAR 0 (4 KiB), 64-bit BAR 2 (1 MiB) with MSI-X (4 vectors)
 * in BAR 0, a vendor capability. Device b: one 32-bit BAR 1 (64 KiB). */
static void make_dev(struct fx *f, struct tdev *t, uint16_t devid, bool full)
{
	const struct spk_pci_dev_config c = {
	    .name = full ? "test-a" : "test-b",
	    .vendor = 0x1234,
	    .device = devid,
	    .subsys_vendor = 0x1234,
	    .subsys_id = 0x42,
	    .revision = 3,
	    .class_code = 0xff0000,
	    .irq_pin = 1,
	    .ops = &t_ops,
	    .opaque = t,
	};
	uint8_t vcap[8] = {0, 0, 8, 0xaa, 0xbb, 0xcc, 0xdd, 0xee};

	assert_int_equal(spk_pci_dev_new(&c, &t->d), 0);
	if (full) {
		assert_int_equal(spk_pci_dev_add_bar(t->d, 0, 0x1000, 0), 0);
		assert_int_equal(spk_pci_dev_add_bar(t->d, 2, 0x100000, SPK_PCI_BAR_64), 0);
		assert_int_equal(spk_pci_dev_add_cap(t->d, SPK_PCI_CAP_ID_VENDOR, vcap,
		                                     sizeof(vcap), NULL, false, NULL),
		                 0);
		assert_int_equal(spk_pci_dev_add_msix(t->d, 4, 0, 0x800, 0xc00), 0);
	} else {
		assert_int_equal(spk_pci_dev_add_bar(t->d, 1, 0x10000, 0), 0);
	}
	assert_int_equal(spk_pci_host_add(f->h, t->d, -1, &t->slot), 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(spk_bus_new(&f->bus), 0);
	const struct spk_pci_host_config hc = {
	    .bus = f->bus,
	    .ecam = ECAM,
	    .mmio_start = WIN,
	    .mmio_size = WSIZE,
	    .intx = fake_line(&f->irq, 16),
	    .msi = on_msi,
	    .msi_ctx = f,
	};
	assert_int_equal(spk_pci_host_new(&hc, &f->h), 0);
	make_dev(f, &f->a, 0x1111, true);
	make_dev(f, &f->b, 0x2222, false);
	log_capture_start(&f->log);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	log_capture_stop();
	spk_pci_dev_free(f->a.d);
	spk_pci_dev_free(f->b.d);
	spk_pci_host_free(f->h);
	spk_bus_free(f->bus);
	free(f);
	return 0;
}

/* ---- guest-style accessors ---------------------------------------------------------- */

static uint64_t pio_rd(struct fx *f, uint16_t port, unsigned w)
{
	uint64_t v = 0;

	assert_int_equal(spk_bus_read(f->bus, SPK_BUS_PIO, port, w, &v, NULL), 0);
	return v;
}

static void pio_wr(struct fx *f, uint16_t port, unsigned w, uint64_t v)
{
	assert_int_equal(spk_bus_write(f->bus, SPK_BUS_PIO, port, w, v, NULL), 0);
}

static uint32_t cf8_rd(struct fx *f, unsigned slot, unsigned reg, unsigned w)
{
	pio_wr(f, 0xcf8, 4, 0x80000000u | slot << 11 | (reg & 0xfc));
	return (uint32_t)pio_rd(f, (uint16_t)(0xcfc + (reg & 3)), w);
}

static void cf8_wr(struct fx *f, unsigned slot, unsigned reg, unsigned w, uint32_t v)
{
	pio_wr(f, 0xcf8, 4, 0x80000000u | slot << 11 | (reg & 0xfc));
	pio_wr(f, (uint16_t)(0xcfc + (reg & 3)), w, v);
}

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

static uint32_t ecam_rd(struct fx *f, unsigned slot, unsigned reg, unsigned w)
{
	return (uint32_t)mm_rd(f, ECAM + ((uint64_t)slot << 15) + reg, w);
}

static void ecam_wr(struct fx *f, unsigned slot, unsigned reg, unsigned w, uint32_t v)
{
	mm_wr(f, ECAM + ((uint64_t)slot << 15) + reg, w, v);
}

static uint64_t bar_addr(struct fx *f, unsigned slot, unsigned bar, bool is64)
{
	uint64_t lo = cf8_rd(f, slot, SPK_PCI_BAR0 + 4 * bar, 4) & ~0xfull;

	return is64 ? lo | (uint64_t)cf8_rd(f, slot, SPK_PCI_BAR0 + 4 * (bar + 1), 4) << 32 : lo;
}

/* ---- mechanism #1 and ECAM ------------------------------------------------------------- */

static void test_bridge(void **state)
{
	struct fx *f = *state;

	assert_int_equal(cf8_rd(f, 0, 0, 4), 0x0d578086);
	assert_int_equal(cf8_rd(f, 0, SPK_PCI_REVISION, 4) >> 8, 0x060000);
	assert_int_equal(cf8_rd(f, 0, SPK_PCI_HEADER_TYPE, 1), 0);
	assert_int_equal(ecam_rd(f, 0, 0, 4), 0x0d578086);
	/* the latch reads back, reserved bits and the low two bits cleared */
	pio_wr(f, 0xcf8, 4, 0xfff0ff07);
	assert_int_equal(pio_rd(f, 0xcf8, 4), 0x80f0ff04);
	/* narrow accesses at 0xCF8 are other registers on a PC: not the latch */
	pio_wr(f, 0xcfb, 1, 0x12);
	assert_int_equal(pio_rd(f, 0xcf8, 4), 0x80f0ff04);
	assert_int_equal(pio_rd(f, 0xcf8, 2), 0xffff);
}

static void test_widths_and_absent(void **state)
{
	struct fx *f = *state;

	assert_int_equal(cf8_rd(f, f->a.slot, 0, 2), 0x1234);
	assert_int_equal(cf8_rd(f, f->a.slot, 2, 2), 0x1111);
	assert_int_equal(cf8_rd(f, f->a.slot, 1, 1), 0x12);
	assert_int_equal(cf8_rd(f, f->a.slot, 3, 1), 0x11);
	assert_int_equal(cf8_rd(f, f->a.slot, 1, 2), 0x1112); /* unaligned, inside the dword */
	assert_int_equal(ecam_rd(f, f->a.slot, 2, 2), 0x1111);
	assert_int_equal(ecam_rd(f, f->a.slot, 1, 2), 0xffff); /* ECAM: naturally aligned only */
	assert_int_equal(cf8_rd(f, 17, 0, 4), 0xffffffff);     /* no device */
	assert_int_equal(ecam_rd(f, 17, 0, 4), 0xffffffff);
	pio_wr(f, 0xcf8, 4, 0x80010000u | f->a.slot << 11); /* bus 1 */
	assert_int_equal(pio_rd(f, 0xcfc, 4), 0xffffffff);
	pio_wr(f, 0xcf8, 4, 0x80000100u | f->a.slot << 11); /* function 1 */
	assert_int_equal(pio_rd(f, 0xcfc, 4), 0xffffffff);
	pio_wr(f, 0xcf8, 4, 0x00000000u | f->a.slot << 11); /* enable bit clear */
	assert_int_equal(pio_rd(f, 0xcfc, 4), 0xffffffff);
	pio_wr(f, 0xcfc, 4, 0x2);
	assert_int_equal(cf8_rd(f, f->a.slot, SPK_PCI_COMMAND, 2), 0);
	/* extended config space exists through ECAM, empty */
	assert_int_equal(ecam_rd(f, f->a.slot, 0x100, 4), 0);
	assert_int_equal(ecam_rd(f, f->a.slot, 0xffc, 4), 0);
	/* an 8-byte config access is not a thing */
	assert_int_equal(mm_rd(f, ECAM + ((uint64_t)f->a.slot << 15), 8), ~0ull);
}

static void test_readonly_and_w1c(void **state)
{
	struct fx *f = *state;
	unsigned s = f->a.slot;

	cf8_wr(f, s, 0, 4, 0xdeadbeef);
	assert_int_equal(cf8_rd(f, s, 0, 4), 0x11111234);
	cf8_wr(f, s, SPK_PCI_COMMAND, 2, 0xffff);
	assert_int_equal(cf8_rd(f, s, SPK_PCI_COMMAND, 2), 0x0547);
	cf8_wr(f, s, SPK_PCI_COMMAND, 2, 0);
	assert_int_equal(cf8_rd(f, s, SPK_PCI_STATUS, 2) & SPK_PCI_STATUS_CAPS,
	                 SPK_PCI_STATUS_CAPS);
	cf8_wr(f, s, SPK_PCI_STATUS, 2, 0xffff); /* w1c on clear bits: nothing to clear */
	assert_int_equal(cf8_rd(f, s, SPK_PCI_STATUS, 2), SPK_PCI_STATUS_CAPS);
	cf8_wr(f, s, SPK_PCI_INT_LINE, 1, 11);
	assert_int_equal(cf8_rd(f, s, SPK_PCI_INT_LINE, 1), 11);
	assert_int_equal(cf8_rd(f, s, SPK_PCI_INT_PIN, 1), 1);
	assert_int_equal(cf8_rd(f, s, SPK_PCI_SUBSYS_VENDOR, 4), 0x00421234);
	cf8_wr(f, s, SPK_PCI_ROM, 4, 0xffffffff); /* no ROM: sizes to 0 */
	assert_int_equal(cf8_rd(f, s, SPK_PCI_ROM, 4), 0);
}

static void test_capabilities(void **state)
{
	struct fx *f = *state;
	unsigned s = f->a.slot, ids[8], n = 0;
	uint8_t at = (uint8_t)cf8_rd(f, s, SPK_PCI_CAP_PTR, 1);

	while (at && n < 8) {
		assert_true(at >= 0x40 && (at & 3) == 0);
		ids[n++] = cf8_rd(f, s, at, 1);
		at = (uint8_t)cf8_rd(f, s, at + 1u, 1);
	}
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], SPK_PCI_CAP_ID_VENDOR);
	assert_int_equal(ids[1], SPK_PCI_CAP_ID_MSIX);
	at = (uint8_t)cf8_rd(f, s, SPK_PCI_CAP_PTR, 1);
	assert_int_equal(cf8_rd(f, s, at + 3u, 1), 0xaa);
	cf8_wr(f, s, at + 3u, 1, 0x55); /* read-only */
	assert_int_equal(cf8_rd(f, s, at + 3u, 1), 0xaa);
	/* device b has no capabilities */
	assert_int_equal(cf8_rd(f, f->b.slot, SPK_PCI_STATUS, 2) & SPK_PCI_STATUS_CAPS, 0);
	assert_int_equal(cf8_rd(f, f->b.slot, SPK_PCI_CAP_PTR, 1), 0);
}

/* ---- BARs ------------------------------------------------------------------------------ */

static void test_bar_placement_and_sizing(void **state)
{
	struct fx *f = *state;
	unsigned s = f->a.slot;
	uint64_t b0 = bar_addr(f, s, 0, false), b2 = bar_addr(f, s, 2, true);
	uint64_t b1 = bar_addr(f, f->b.slot, 1, false);

	assert_true(b0 >= WIN && b0 + 0x1000 <= WIN + WSIZE && b0 % 0x1000 == 0);
	assert_true(b2 >= WIN && b2 + 0x100000 <= WIN + WSIZE && b2 % 0x100000 == 0);
	assert_true(b1 % 0x10000 == 0 && (b1 + 0x10000 <= b0 || b1 >= b2 + 0x100000 ||
	                                  (b1 >= b0 + 0x1000 && b1 + 0x10000 <= b2)));
	assert_int_equal(cf8_rd(f, s, SPK_PCI_BAR0 + 8, 4) & 0xf, 0x4); /* 64-bit, memory */
	/* sizing: all-ones, read back, restore */
	cf8_wr(f, s, SPK_PCI_BAR0, 4, 0xffffffff);
	assert_int_equal(cf8_rd(f, s, SPK_PCI_BAR0, 4), 0xfffff000);
	cf8_wr(f, s, SPK_PCI_BAR0 + 8, 4, 0xffffffff);
	cf8_wr(f, s, SPK_PCI_BAR0 + 12, 4, 0xffffffff);
	assert_int_equal(cf8_rd(f, s, SPK_PCI_BAR0 + 8, 4), 0xfff00004);
	assert_int_equal(cf8_rd(f, s, SPK_PCI_BAR0 + 12, 4), 0xffffffff);
	cf8_wr(f, s, SPK_PCI_BAR0, 4, (uint32_t)b0);
	cf8_wr(f, s, SPK_PCI_BAR0 + 8, 4, (uint32_t)b2);
	cf8_wr(f, s, SPK_PCI_BAR0 + 12, 4, 0);
	assert_int_equal(bar_addr(f, s, 2, true), b2);
	/* unimplemented BARs size to 0 */
	cf8_wr(f, s, SPK_PCI_BAR0 + 4, 4, 0xffffffff);
	assert_int_equal(cf8_rd(f, s, SPK_PCI_BAR0 + 4, 4), 0);
	assert_int_equal(cf8_rd(f, s, SPK_PCI_BAR0 + 20, 4), 0);
}

static void test_bar_decode(void **state)
{
	struct fx *f = *state;
	unsigned s = f->a.slot;
	uint64_t b0 = bar_addr(f, s, 0, false), b2 = bar_addr(f, s, 2, true);

	/* memory decoding off: the window has nothing there */
	assert_int_equal(mm_rd(f, b0 + 8, 4), 0xffffffff);
	assert_int_equal(f->a.reads, 0);
	cf8_wr(f, s, SPK_PCI_COMMAND, 2, SPK_PCI_CMD_MEMORY);
	assert_int_equal(f->a.moves, 2);
	assert_int_equal(spk_pci_dev_bar_addr(f->a.d, 2), b2);
	assert_int_equal(mm_rd(f, b0 + 8, 4), 8);
	assert_int_equal(mm_rd(f, b2 + 0x40, 8), 0x2040);
	assert_int_equal(f->a.last_bar, 2);
	mm_wr(f, b2 + 0xfff8, 8, 0x1122334455667788ull);
	assert_int_equal(f->a.last_off, 0xfff8);
	assert_int_equal(f->a.last_val, 0x1122334455667788ull);
	/* an access that runs past the BAR's end is not the BAR's */
	unsigned before = f->a.reads;
	assert_int_equal(mm_rd(f, b0 + 0xffe, 4), 0xffffffff);
	assert_int_equal(f->a.reads, before);
	cf8_wr(f, s, SPK_PCI_COMMAND, 2, 0);
	assert_int_equal(f->a.moved_to, 0);
	assert_int_equal(mm_rd(f, b0 + 8, 4), 0xffffffff);
}

static void test_bar_move(void **state)
{
	struct fx *f = *state;
	unsigned s = f->a.slot;
	uint64_t b0 = bar_addr(f, s, 0, false), to = WIN + 0x10000000;

	cf8_wr(f, s, SPK_PCI_COMMAND, 2, SPK_PCI_CMD_MEMORY);
	cf8_wr(f, s, SPK_PCI_BAR0, 4, (uint32_t)to);
	assert_int_equal(f->a.moved_to, to);
	assert_int_equal(mm_rd(f, to + 4, 4), 4);
	assert_int_equal(mm_rd(f, b0 + 4, 4), 0xffffffff);
	/* outside the window: not decoded, said once */
	unsigned warned = f->log.warnings;
	cf8_wr(f, s, SPK_PCI_BAR0, 4, 0x10000000);
	assert_int_equal(f->a.moved_to, 0);
	assert_int_equal(f->log.warnings, warned + 1);
	assert_non_null(strstr(f->log.last, "test-a (00:"));
	assert_non_null(strstr(f->log.last, "outside"));
	cf8_wr(f, s, SPK_PCI_BAR0, 4, 0x20000000);
	assert_int_equal(f->log.warnings, warned + 1);
	/* on top of device b's BAR: refused, named */
	uint64_t b1 = bar_addr(f, f->b.slot, 1, false);
	cf8_wr(f, f->b.slot, SPK_PCI_COMMAND, 2, SPK_PCI_CMD_MEMORY);
	cf8_wr(f, s, SPK_PCI_BAR0, 4, (uint32_t)b1);
	assert_int_equal(f->a.moved_to, 0);
	assert_non_null(strstr(f->log.last, "overlaps"));
	assert_int_equal(mm_rd(f, b1 + 4, 4), 0x1004); /* still device b's */
	assert_int_equal(f->b.last_bar, 1);
	/* and back */
	cf8_wr(f, s, SPK_PCI_BAR0, 4, (uint32_t)b0);
	assert_int_equal(f->a.moved_to, b0);
	assert_int_equal(mm_rd(f, b0 + 4, 4), 4);
}

/* ---- MSI-X and INTx ------------------------------------------------------------------------ */

static uint8_t msix_cap(struct fx *f, unsigned s)
{
	uint8_t at = (uint8_t)cf8_rd(f, s, SPK_PCI_CAP_PTR, 1);

	while (at && cf8_rd(f, s, at, 1) != SPK_PCI_CAP_ID_MSIX)
		at = (uint8_t)cf8_rd(f, s, at + 1u, 1);
	assert_true(at != 0);
	return at;
}

static void test_msix(void **state)
{
	struct fx *f = *state;
	unsigned s = f->a.slot;
	uint8_t cap = msix_cap(f, s);
	uint64_t b0 = bar_addr(f, s, 0, false), tbl = b0 + 0x800, pba = b0 + 0xc00;

	assert_int_equal(cf8_rd(f, s, cap + 2u, 2), 3); /* 4 vectors */
	assert_int_equal(cf8_rd(f, s, cap + 4u, 4), 0x800);
	assert_int_equal(cf8_rd(f, s, cap + 8u, 4), 0xc00);
	cf8_wr(f, s, SPK_PCI_COMMAND, 2, SPK_PCI_CMD_MEMORY | SPK_PCI_CMD_MASTER);
	assert_int_equal(spk_pci_msix_signal(f->a.d, 1), -ENOTCONN);
	/* vector 1: masked at reset */
	assert_int_equal(mm_rd(f, tbl + 16 + 12, 4), 1);
	mm_wr(f, tbl + 16, 8, 0xfee01000);
	mm_wr(f, tbl + 16 + 8, 4, 0x4041);
	assert_int_equal(mm_rd(f, tbl + 16, 8), 0xfee01000);
	cf8_wr(f, s, cap + 2u, 2, SPK_PCI_MSIX_ENABLE);
	assert_true(spk_pci_msix_enabled(f->a.d));
	assert_int_equal(spk_pci_msix_signal(f->a.d, 1), 0);
	assert_int_equal(f->msis, 0); /* masked: pending */
	assert_int_equal(mm_rd(f, pba, 8), 0x2);
	mm_wr(f, tbl + 16 + 12, 4, 0); /* unmask: the pending one goes */
	assert_int_equal(f->msis, 1);
	assert_int_equal(f->last_msi.addr, 0xfee01000);
	assert_int_equal(f->last_msi.data, 0x4041);
	assert_int_equal(mm_rd(f, pba, 8), 0);
	assert_int_equal(spk_pci_msix_signal(f->a.d, 1), 0);
	assert_int_equal(f->msis, 2);
	/* function mask */
	cf8_wr(f, s, cap + 2u, 2, SPK_PCI_MSIX_ENABLE | SPK_PCI_MSIX_MASKALL);
	assert_int_equal(spk_pci_msix_signal(f->a.d, 1), 0);
	assert_int_equal(f->msis, 2);
	cf8_wr(f, s, cap + 2u, 2, SPK_PCI_MSIX_ENABLE);
	assert_int_equal(f->msis, 3);
	assert_int_equal(spk_pci_msix_signal(f->a.d, 4), -EINVAL);
	/* a bad address is dropped with one line */
	mm_wr(f, tbl + 32, 4, 0x1000);
	mm_wr(f, tbl + 32 + 12, 4, 0);
	assert_int_equal(spk_pci_msix_signal(f->a.d, 2), 0);
	assert_int_equal(f->msis, 3);
	assert_non_null(strstr(f->log.last, "outside the LAPIC range"));
	/* odd accesses to the table and the PBA are ignored */
	mm_wr(f, tbl + 17, 1, 0xff);
	mm_wr(f, pba, 8, ~0ull);
	assert_int_equal(mm_rd(f, tbl + 16, 4), 0xfee01000);
	assert_int_equal(mm_rd(f, pba, 8), 0);
	assert_int_equal(mm_rd(f, tbl + 18, 2), 0xffff);
	/* the rest of BAR 0 is still the device's */
	assert_int_equal(mm_rd(f, b0 + 0x10, 4), 0x10);
}

static void test_intx(void **state)
{
	struct fx *f = *state;
	unsigned s = f->a.slot;
	uint32_t gsi = spk_pci_intx_gsi(16, s, 1);

	spk_pci_intx(f->a.d, true);
	assert_true(f->irq.level);
	assert_int_equal(f->irq.gsi, gsi);
	assert_true(cf8_rd(f, s, SPK_PCI_STATUS, 2) & SPK_PCI_STATUS_INTX);
	cf8_wr(f, s, SPK_PCI_COMMAND, 2, SPK_PCI_CMD_INTX_OFF);
	assert_false(f->irq.level);
	assert_true(cf8_rd(f, s, SPK_PCI_STATUS, 2) & SPK_PCI_STATUS_INTX); /* still pending */
	cf8_wr(f, s, SPK_PCI_COMMAND, 2, 0);
	assert_true(f->irq.level);
	spk_pci_intx(f->a.d, false);
	assert_false(f->irq.level);
	assert_false(cf8_rd(f, s, SPK_PCI_STATUS, 2) & SPK_PCI_STATUS_INTX);
	/* MSI-X on: INTx is off */
	spk_pci_intx(f->a.d, true);
	cf8_wr(f, s, msix_cap(f, s) + 2u, 2, SPK_PCI_MSIX_ENABLE);
	assert_false(f->irq.level);
	assert_int_equal(spk_pci_intx_gsi(16, 1, 1), 17);
	assert_int_equal(spk_pci_intx_gsi(16, 7, 2), 16);
	assert_int_equal(spk_pci_intx_gsi(16, 0, 4), 19);
}

/* Two devices on one line: it stays up while either asserts. */
static void test_intx_shared(void **state)
{
	struct fx *f = *state;
	struct tdev c = {0};
	const struct spk_pci_dev_config cc = {.name = "test-c",
	                                      .vendor = 0x1234,
	                                      .device = 3,
	                                      .irq_pin = 1,
	                                      .ops = &t_ops,
	                                      .opaque = &c};

	assert_int_equal(spk_pci_dev_new(&cc, &c.d), 0);
	assert_int_equal(spk_pci_host_add(f->h, c.d, (int)f->a.slot + 8, &c.slot), 0);
	assert_int_equal(spk_pci_intx_gsi(16, c.slot, 1), spk_pci_intx_gsi(16, f->a.slot, 1));
	spk_pci_intx(f->a.d, true);
	spk_pci_intx(c.d, true);
	spk_pci_intx(f->a.d, false);
	assert_true(f->irq.level);
	spk_pci_intx(c.d, false);
	assert_false(f->irq.level);
	spk_pci_dev_free(c.d);
}

/* A device capability with notify that ends at 0x100: its hooks run for
 * every byte of it, the last one too. */
static unsigned hook_writes, hook_reads;

static void hook_written(void *opaque, uint32_t off, unsigned width)
{
	hook_writes++;
}

static void hook_reading(void *opaque, uint32_t off, unsigned width)
{
	hook_reads++;
}

static void test_cap_hooks_to_the_end(void **state)
{
	struct fx *f = *state;
	static const struct spk_pci_dev_ops ops = {.cfg_written = hook_written,
	                                           .cfg_reading = hook_reading};
	const struct spk_pci_dev_config c = {.name = "hooks", .vendor = 0x1234, .ops = &ops};
	uint8_t cap[0xc0] = {0}, wm[0xc0];
	struct spk_pci_dev *d;
	unsigned slot;
	uint8_t at;

	memset(wm, 0xff, sizeof(wm));
	assert_int_equal(spk_pci_dev_new(&c, &d), 0);
	assert_int_equal(
	    spk_pci_dev_add_cap(d, SPK_PCI_CAP_ID_VENDOR, cap, sizeof(cap), wm, true, &at), 0);
	assert_int_equal(at, 0x40);
	assert_int_equal(spk_pci_host_add(f->h, d, -1, &slot), 0);
	hook_writes = hook_reads = 0;
	cf8_wr(f, slot, 0xfc, 4, 0x11223344);
	assert_int_equal(hook_writes, 1);
	assert_int_equal(cf8_rd(f, slot, 0xfc, 4), 0x11223344);
	assert_int_equal(hook_reads, 1);
	cf8_wr(f, slot, 0x3c, 1, 5); /* not the capability */
	assert_int_equal(hook_writes, 1);
	spk_pci_dev_free(d);
}

/* ---- setup errors ------------------------------------------------------------------------- */

static void test_setup_errors(void **state)
{
	struct fx *f = *state;
	struct spk_pci_dev *d;
	const struct spk_pci_dev_config c = {.name = "bad", .vendor = 0x1234, .ops = &t_ops};

	assert_int_equal(spk_pci_dev_new(&c, &d), 0);
	assert_int_equal(spk_pci_dev_add_bar(d, 6, 0x1000, 0), -EINVAL);
	assert_int_equal(spk_pci_dev_add_bar(d, 5, 0x1000, SPK_PCI_BAR_64), -EINVAL);
	assert_int_equal(spk_pci_dev_add_bar(d, 0, 0x1800, 0), -EINVAL);
	assert_int_equal(spk_pci_dev_add_bar(d, 0, 8, 0), -EINVAL);
	assert_int_equal(spk_pci_dev_add_bar(d, 0, 0x1000, SPK_PCI_BAR_64), 0);
	assert_int_equal(spk_pci_dev_add_bar(d, 1, 0x1000, 0), -EEXIST);
	assert_int_equal(spk_pci_dev_add_msix(d, 0, 0, 0, 0x800), -EINVAL);
	assert_int_equal(spk_pci_dev_add_msix(d, 4, 2, 0, 0x800), -EINVAL);     /* no BAR 2 */
	assert_int_equal(spk_pci_dev_add_msix(d, 4, 0, 0, 0x20), -EINVAL);      /* overlap */
	assert_int_equal(spk_pci_dev_add_msix(d, 4, 0, 0xff8, 0x800), -EINVAL); /* past the end */
	uint8_t big[200] = {0};
	assert_int_equal(spk_pci_dev_add_cap(d, 9, big, sizeof(big), NULL, false, NULL), -ENOSPC);
	assert_int_equal(spk_pci_host_add(f->h, d, 0, NULL), -EINVAL);
	assert_int_equal(spk_pci_host_add(f->h, d, (int)f->a.slot, NULL), -EEXIST);
	assert_non_null(strstr(spk_last_error(), "test-a"));
	assert_int_equal(spk_pci_host_add(f->h, d, 31, NULL), 0);
	assert_int_equal(spk_pci_host_add(f->h, d, 30, NULL), -EEXIST);
	assert_int_equal(spk_pci_dev_add_bar(d, 2, 0x1000, 0), -EBUSY);
	assert_string_equal(spk_pci_dev_name(d), "bad (00:1f.0)");
	spk_pci_dev_free(d);

	/* a BAR bigger than what is left of the window */
	const struct spk_pci_dev_config h = {.name = "huge", .vendor = 0x1234, .ops = &t_ops};
	assert_int_equal(spk_pci_dev_new(&h, &d), 0);
	assert_int_equal(spk_pci_dev_add_bar(d, 0, 1ull << 31, SPK_PCI_BAR_64), 0);
	assert_int_equal(spk_pci_host_add(f->h, d, -1, NULL), -ENOSPC);
	spk_pci_dev_free(d);
}

/* ---- a hostile guest ------------------------------------------------------------------------ */

/* A device freed before its host: its slot reads as absent and its BARs
 * leave the window (no access reaches freed memory; ASan checks); the
 * other device is untouched. And a device freed after the host does not
 * reach back into it (teardown frees b after the host). */
static void test_free_before_host(void **state)
{
	struct fx *f = *state;
	unsigned s = f->a.slot;

	cf8_wr(f, s, SPK_PCI_COMMAND, 2, SPK_PCI_CMD_MEMORY);
	uint64_t b0 = bar_addr(f, s, 0, false);
	assert_int_equal(mm_rd(f, b0 + 8, 4), 8);
	spk_pci_dev_free(f->a.d);
	f->a.d = NULL;
	assert_int_equal(cf8_rd(f, s, 0, 4), 0xffffffff);
	assert_int_equal(ecam_rd(f, s, 0, 4), 0xffffffff);
	assert_int_equal(mm_rd(f, b0 + 8, 4), 0xffffffff);
	assert_int_equal(cf8_rd(f, f->b.slot, 0, 2), 0x1234);
	/* the slot is free again for a new device */
	struct tdev c = {0};
	make_dev(f, &c, 0x3333, false);
	assert_int_equal(c.slot, s);
	spk_pci_host_free(f->h);
	f->h = NULL;
	spk_pci_dev_free(c.d);
}

static void test_hostile(void **state)
{
	struct fx *f = *state;
	uint64_t seed = 0x5eed;

	for (int i = 0; i < HOSTILE_ITERATIONS; i++) {
		unsigned w = 1u << (prng_next(&seed) % 3), slot = prng_next(&seed) % 4;
		uint32_t reg = (uint32_t)prng_next(&seed) & 0xfff & ~(w - 1);
		uint64_t v = prng_value(&seed, w);
		uint64_t got;

		switch (prng_next(&seed) % 4) {
		case 0:
			ecam_wr(f, slot, reg, w, (uint32_t)v);
			break;
		case 1:
			ecam_rd(f, slot, reg, w);
			break;
		case 2:
			pio_wr(f, 0xcf8, 4, (uint32_t)prng_next(&seed));
			pio_wr(f, (uint16_t)(0xcfc + (reg & 3 & ~(w - 1))), w, v);
			break;
		default: /* anywhere in the window */
			spk_bus_read(f->bus, SPK_BUS_MMIO, WIN + prng_next(&seed) % 0x400000,
			             prng_width(&seed), &got, NULL);
			spk_bus_write(f->bus, SPK_BUS_MMIO, WIN + prng_next(&seed) % 0x400000,
			              prng_width(&seed), prng_next(&seed), NULL);
			break;
		}
	}
	/* identity survives */
	assert_int_equal(cf8_rd(f, f->a.slot, 0, 4), 0x11111234);
	assert_int_equal(cf8_rd(f, 0, 0, 4), 0x0d578086);
	/* the log was rate-limited, not flooded */
	assert_true(f->log.lines < 200);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_bridge, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_widths_and_absent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_readonly_and_w1c, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_capabilities, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bar_placement_and_sizing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bar_decode, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bar_move, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_msix, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_intx, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_intx_shared, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cap_hooks_to_the_end, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_setup_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_free_before_host, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
