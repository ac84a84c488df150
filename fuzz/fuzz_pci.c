/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for PCI configuration space as a guest reaches it: the
 * host bridge's ports 0xCF8-0xCFF at every width, its ECAM window and the
 * BAR window, with a virtio-rng and a virtio-console behind the real
 * virtio PCI transport, a small guest memory and no KVM (MSI-X messages
 * and INTx lines go to recording fakes; queue work runs on this thread).
 * Each input builds the bus afresh and is a sequence of operations; after
 * every one the target checks what must always hold:
 *
 *   - identity registers, the header type, the absent BARs and the ROM
 *     never change; BAR 0 always reads as a 64-bit memory BAR of 32 KiB;
 *     absent slots and functions read all-ones;
 *   - the capability list is the one the devices were made with;
 *   - a BAR is decoded only with Memory Space on, where its registers say,
 *     wholly inside the window, and never on top of the other device's;
 *   - each INTx line is high exactly when its device asserts INTx
 *     (status bit 3) with INTx not disabled and MSI-X off, and the host
 *     never sets a line to the level it already has;
 *   - an MSI-X message only ever goes to the LAPIC range;
 *   - a config read through 0xCFC or ECAM equals the same read made by
 *     the host (outside the VIRTIO_PCI_CAP_PCI_CFG data window, whose
 *     reads have side effects);
 *   - at the end, a device with FEATURES_OK accepted VERSION_1 and only
 *     offered features.
 *
 * Input: operations, each an opcode byte and its operands (little-endian);
 * a truncated operation ends the input. Opcode: bits 0-3 the kind, bits
 * 4-5 the width (1, 2, 4, 8), bits 6-7 a selector.
 *   0  PIO write 0xCF8 + (b & 7), value u32     1  PIO read 0xCF8 + (b & 7)
 *   2  latch 0xCF8: b slot | fn << 5, b reg     3  ECAM write: u24 offset, u32
 *   4  ECAM read: u24 offset                    5  BAR write: u16 offset, u64
 *   6  BAR read: u16 offset                     7  window write: u32 offset, u64
 *   8  guest RAM: u16 gpa, b len, len bytes     9  host: b what (& 3: 0 console
 *  10  driver start: b features, b qsize,          input of what >> 2 bytes, 1
 *      u16 rings                                   resize u16 u16, else MSI-X
 *                                                  vector (what >> 2) % 8)
 *  11  VIRTIO_PCI_CAP_PCI_CFG: u16 offset, u32  12  MSI-X entry: b vector, u32
 *  13  MSI-X control: u16                           data, b flags
 *  14  config write by the host: b reg, u32     15  config read by the host: b reg
 * For 5, 6, 9-15 the selector's bit 0 picks the device (rng, console).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sparkler/bus.h>
#include <sparkler/log.h>
#include <sparkler/mem.h>
#include <sparkler/pci.h>
#include <sparkler/platform.h>
#include <sparkler/virtio.h>

#define RAM_SIZE (64u << 10)
#define ROM_SIZE 4096u
#define WIN      SPK_PC_PCI_MMIO_START
#define WIN_SIZE SPK_PC_PCI_MMIO_SIZE
#define ECAM     SPK_PC_PCI_ECAM
#define GSI_BASE SPK_PC_PCI_INTX_GSI
#define BAR_SIZE 0x8000u /* the virtio transport's BAR 0 */
#define MAX_OPS  256
#define MAX_CAPS 16
#define NDEV     2
#define CFG_WIN  16 /* the data bytes of VIRTIO_PCI_CAP_PCI_CFG */

/* struct virtio_pci_common_cfg */
enum { DFSEL = 0x00, DF = 0x04, GFSEL = 0x08, GF = 0x0c, STATUS = 0x14, QSEL = 0x16 };
enum { QSIZE = 0x18, QMSIX = 0x1a, QENABLE = 0x1c, QDESC = 0x20, QDRV = 0x28, QDEV = 0x30 };

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct dev {
	struct spk_pci_dev *pdev;
	unsigned slot;
	uint16_t id;
	uint8_t caps[MAX_CAPS], ncaps;
	uint8_t msix, pcicfg;    /* capability offsets */
	uint64_t common, notify; /* BAR offsets */
	uint16_t nq;
};

static struct spk_mem *mem;
static uint8_t *ram, *rom;
static struct spk_bus *bus;
static struct spk_pci_host *host;
static struct spk_virtio_rng *rng;
static struct spk_virtio_console *con;
static struct dev devs[NDEV];
static bool line[SPK_PCI_INTX_LINES];

/* ---- the fakes ------------------------------------------------------------------- */

static void quiet(enum spk_log_level level, const char *msg, void *opaque)
{
}

static void set_line(void *ctx, uint32_t gsi, bool level)
{
	if (gsi < GSI_BASE || gsi >= GSI_BASE + SPK_PCI_INTX_LINES)
		abort(); /* a GSI the _PRT does not have */
	if (line[gsi - GSI_BASE] == level)
		abort(); /* the host sets a line only when it changes */
	line[gsi - GSI_BASE] = level;
}

static void on_msi(void *ctx, const struct spk_msi *msi)
{
	if ((msi->addr & ~0xfffffull) != SPK_PC_LAPIC)
		abort(); /* only LAPIC messages are sent */
}

static void on_output(void *ctx, const uint8_t *buf, size_t n)
{
	if (n == 0 || !buf)
		abort();
}

/* ---- the input ------------------------------------------------------------------- */

struct in {
	const uint8_t *p;
	size_t left;
	bool end;
};

static uint64_t take(struct in *in, unsigned n)
{
	uint64_t v = 0;

	if (in->left < n) {
		in->end = true;
		in->left = 0;
		return 0;
	}
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)in->p[i] << (8 * i);
	in->p += n;
	in->left -= n;
	return v;
}

/* Up to n bytes of the input as they are; *got says how many. */
static const uint8_t *take_bytes(struct in *in, size_t n, size_t *got)
{
	const uint8_t *p = in->p;

	*got = n < in->left ? n : in->left;
	in->p += *got;
	in->left -= *got;
	return p;
}

/* ---- access helpers ----------------------------------------------------------------- */

static uint64_t mask(unsigned width)
{
	return width == 8 ? ~0ull : (1ull << (8 * width)) - 1;
}

/* A bus read; *hit (may be NULL) says whether a device took it. */
static uint64_t rd_hit(enum spk_bus_space s, uint64_t a, unsigned w, bool *hit)
{
	uint64_t v = 0;
	bool h = spk_bus_read(bus, s, a, w, &v, NULL) == 0;

	if (hit)
		*hit = h;
	return v;
}

static uint64_t rd(enum spk_bus_space s, uint64_t a, unsigned w)
{
	return rd_hit(s, a, w, NULL);
}

static void wr(enum spk_bus_space s, uint64_t a, unsigned w, uint64_t v)
{
	spk_bus_write(bus, s, a, w, v & mask(w), NULL);
}

/* A config read by the host: never wider than asked. */
static uint32_t cfg(const struct dev *d, uint32_t off, unsigned w)
{
	uint32_t v = spk_pci_host_cfg_read(host, d->slot, off, w);

	if (w < 4 && (v >> (8 * w)))
		abort();
	return v;
}

/* Where BAR 0 is decoded, else where its registers say (misses). */
static uint64_t bar_base(struct dev *d)
{
	uint64_t a = spk_pci_dev_bar_addr(d->pdev, 0);

	if (a)
		return a;
	return (cfg(d, SPK_PCI_BAR0, 4) & ~0xfull) | (uint64_t)cfg(d, SPK_PCI_BAR0 + 4, 4) << 32;
}

static bool in_cfg_window(const struct dev *d, uint32_t reg, unsigned w)
{
	uint32_t lo = d->pcicfg + (uint32_t)CFG_WIN;

	return reg < lo + 4 && lo < reg + w;
}

static struct dev *dev_at(unsigned slot)
{
	for (unsigned i = 0; i < NDEV; i++)
		if (devs[i].slot == slot)
			return &devs[i];
	return NULL;
}

/* A config read the guest made must equal the host's own read. */
static void same_as_host(unsigned slot, uint32_t reg, unsigned w, uint64_t got)
{
	struct dev *d = dev_at(slot);

	if (d && in_cfg_window(d, reg, w))
		return;
	if (got != spk_pci_host_cfg_read(host, slot, reg, w))
		abort();
}

/* ---- set-up --------------------------------------------------------------------------- */

static void probe(struct dev *d, struct spk_virtio *vd, uint16_t id, uint16_t nq)
{
	d->pdev = spk_virtio_pci(vd);
	d->id = id;
	d->nq = nq;
	d->ncaps = 0;
	for (d->slot = 1; d->slot < SPK_PCI_SLOTS; d->slot++)
		if (cfg(d, 0, 4) == ((0x1040u + id) << 16 | 0x1af4))
			break;
	if (d->slot == SPK_PCI_SLOTS)
		abort();
	for (uint8_t at = (uint8_t)cfg(d, SPK_PCI_CAP_PTR, 1); at;
	     at = (uint8_t)cfg(d, at + 1u, 1)) {
		if (d->ncaps == MAX_CAPS)
			abort();
		d->caps[d->ncaps++] = at;
		if (cfg(d, at, 1) == SPK_PCI_CAP_ID_MSIX) {
			d->msix = at;
			continue;
		}
		switch (cfg(d, at + 3u, 1)) {
		case 1:
			d->common = cfg(d, at + 8u, 4);
			break;
		case 2:
			d->notify = cfg(d, at + 8u, 4);
			break;
		case 5:
			d->pcicfg = at;
			break;
		}
	}
	if (!d->msix || !d->pcicfg || !d->notify)
		abort();
}

static void build(void)
{
	struct spk_pci_host_config hc = {
	    .ecam = ECAM,
	    .mmio_start = WIN,
	    .mmio_size = WIN_SIZE,
	    .intx = {.set = set_line, .gsi = GSI_BASE},
	    .msi = on_msi,
	};
	struct spk_virtio_rng_config rc = {.slot = -1, .mem = mem};
	struct spk_virtio_console_config cc = {
	    .slot = -1, .mem = mem, .output = on_output, .cols = 80, .rows = 25};

	memset(line, 0, sizeof(line));
	if (spk_bus_new(&bus))
		abort();
	hc.bus = bus;
	if (spk_pci_host_new(&hc, &host))
		abort();
	rc.pci = cc.pci = host;
	if (spk_virtio_rng_new(&rc, &rng) || spk_virtio_console_new(&cc, &con))
		abort(); /* a broken harness, not a finding */
	probe(&devs[0], spk_virtio_rng_dev(rng), SPK_VIRTIO_ID_RNG, 1);
	probe(&devs[1], spk_virtio_console_dev(con), SPK_VIRTIO_ID_CONSOLE, 2);
	spk_bus_freeze(bus);
}

static void teardown(void)
{
	spk_virtio_rng_free(rng);
	spk_virtio_console_free(con);
	spk_pci_host_free(host);
	spk_bus_free(bus);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	spk_log_set(quiet, NULL, SPK_LOG_ERROR);
	ram = calloc(1, RAM_SIZE);
	rom = calloc(1, ROM_SIZE);
	if (!ram || !rom || spk_mem_new(&mem) ||
	    spk_mem_add(mem, 0, RAM_SIZE, SPK_MEM_RAM, ram, "ram") ||
	    spk_mem_add(mem, RAM_SIZE, ROM_SIZE, SPK_MEM_READONLY, rom, "rom"))
		abort();
	return 0;
}

/* ---- the invariants ---------------------------------------------------------------------- */

static void check_dev(struct dev *d, const struct dev *other)
{
	uint16_t cmd = (uint16_t)cfg(d, SPK_PCI_COMMAND, 2);
	uint32_t lo = cfg(d, SPK_PCI_BAR0, 4);
	uint64_t bar = (lo & ~0xfull) | (uint64_t)cfg(d, SPK_PCI_BAR0 + 4, 4) << 32;
	uint64_t at = spk_pci_dev_bar_addr(d->pdev, 0), oat = spk_pci_dev_bar_addr(other->pdev, 0);
	uint8_t n = 0, cap = (uint8_t)cfg(d, SPK_PCI_CAP_PTR, 1);

	if (cfg(d, 0, 4) != ((0x1040u + d->id) << 16 | 0x1af4) ||
	    cfg(d, SPK_PCI_HEADER_TYPE, 1) != 0 || cfg(d, SPK_PCI_ROM, 4) != 0 ||
	    cfg(d, SPK_PCI_SUBSYS_ID, 2) != d->id || (lo & (BAR_SIZE - 1)) != 0x4 ||
	    !(cfg(d, SPK_PCI_STATUS, 2) & SPK_PCI_STATUS_CAPS))
		abort();
	for (unsigned b = 2; b < SPK_PCI_BARS; b++)
		if (cfg(d, SPK_PCI_BAR0 + 4 * b, 4) != 0)
			abort();
	for (; cap; cap = (uint8_t)cfg(d, cap + 1u, 1))
		if (n >= d->ncaps || d->caps[n++] != cap)
			abort();
	if (n != d->ncaps)
		abort();
	if (at &&
	    (!(cmd & SPK_PCI_CMD_MEMORY) || at != bar || at < WIN ||
	     at - WIN > WIN_SIZE - BAR_SIZE || (oat && at < oat + BAR_SIZE && oat < at + BAR_SIZE)))
		abort();
	bool intx = (cfg(d, SPK_PCI_STATUS, 2) & SPK_PCI_STATUS_INTX) &&
	            !(cmd & SPK_PCI_CMD_INTX_OFF) &&
	            !(cfg(d, d->msix + 2u, 2) & SPK_PCI_MSIX_ENABLE);
	if (line[spk_pci_intx_gsi(GSI_BASE, d->slot, 1) - GSI_BASE] != intx)
		abort();
}

static void check_all(void)
{
	check_dev(&devs[0], &devs[1]);
	check_dev(&devs[1], &devs[0]);
	if (spk_pci_host_cfg_read(host, 0, 0, 2) != 0x8086 ||
	    spk_pci_host_cfg_read(host, 7, 0, 4) != 0xffffffffu ||
	    rd(SPK_BUS_MMIO, ECAM + (1u << 12), 4) != 0xffffffffu) /* 00:00.1 */
		abort();
}

/* With FEATURES_OK, the driver's features are offered ones and have VERSION_1. */
static void check_features(struct dev *d)
{
	uint64_t base = spk_pci_dev_bar_addr(d->pdev, 0) + d->common, dev = 0, drv = 0;

	if (base == d->common || !(rd(SPK_BUS_MMIO, base + STATUS, 1) & SPK_VIRTIO_S_FEATURES_OK))
		return;
	for (unsigned i = 0; i < 2; i++) {
		wr(SPK_BUS_MMIO, base + DFSEL, 4, i);
		dev |= rd(SPK_BUS_MMIO, base + DF, 4) << (32 * i);
		wr(SPK_BUS_MMIO, base + GFSEL, 4, i);
		drv |= rd(SPK_BUS_MMIO, base + GF, 4) << (32 * i);
	}
	if ((drv & ~dev) || !(drv & SPK_VIRTIO_F_BIT(SPK_VIRTIO_F_VERSION_1)))
		abort();
}

/* ---- the operations --------------------------------------------------------------------- */

static const unsigned widths[4] = {1, 2, 4, 8};

/* Memory Space and bus mastering on, by the host (as firmware leaves them). */
static void enable(struct dev *d)
{
	uint16_t cmd = (uint16_t)cfg(d, SPK_PCI_COMMAND, 2);

	spk_pci_host_cfg_write(host, d->slot, SPK_PCI_COMMAND, 2,
	                       cmd | SPK_PCI_CMD_MEMORY | SPK_PCI_CMD_MASTER);
}

/* What a driver does first: reset, negotiate, every queue at rings in
 * guest RAM, DRIVER_OK. */
static void driver_start(struct dev *d, struct in *in)
{
	uint8_t fl = (uint8_t)take(in, 1), qs = (uint8_t)take(in, 1);
	uint16_t rings = (uint16_t)take(in, 2);
	uint64_t c = bar_base(d) + d->common;
	uint64_t f = SPK_VIRTIO_F_BIT(SPK_VIRTIO_F_VERSION_1) |
	             (fl & 1 ? SPK_VIRTIO_F_BIT(SPK_VIRTIO_F_EVENT_IDX) : 0) |
	             (fl & 2 ? SPK_VIRTIO_F_BIT(SPK_VIRTIO_F_INDIRECT_DESC) : 0) |
	             (fl & 4 ? 1ull : 0) | (fl & 8 ? 1ull << 2 : 0);

	enable(d);
	wr(SPK_BUS_MMIO, c + STATUS, 1, 0);
	wr(SPK_BUS_MMIO, c + STATUS, 1, 3);
	for (unsigned i = 0; i < 2; i++) {
		wr(SPK_BUS_MMIO, c + GFSEL, 4, i);
		wr(SPK_BUS_MMIO, c + GF, 4, (uint32_t)(f >> (32 * i)));
	}
	wr(SPK_BUS_MMIO, c + STATUS, 1, 3 | 8);
	for (unsigned q = 0; q < d->nq; q++) {
		uint64_t r = (rings + 0x3000ull * q) & 0xffff;

		wr(SPK_BUS_MMIO, c + QSEL, 2, q);
		wr(SPK_BUS_MMIO, c + QSIZE, 2, fl & 0x80 ? qs : 1u << (qs % 9));
		wr(SPK_BUS_MMIO, c + QMSIX, 2, fl & 0x40 ? q + 1 : 0xffff);
		wr(SPK_BUS_MMIO, c + QDESC, 8, r);
		wr(SPK_BUS_MMIO, c + QDRV, 8, r + 0x1000);
		wr(SPK_BUS_MMIO, c + QDEV, 8, r + 0x2000);
		wr(SPK_BUS_MMIO, c + QENABLE, 2, 1);
	}
	wr(SPK_BUS_MMIO, c + STATUS, 1, 3 | 8 | 4);
}

/* Through VIRTIO_PCI_CAP_PCI_CFG: BAR, offset, length, then the data. */
static void pcicfg_access(struct dev *d, unsigned w, bool write, struct in *in)
{
	uint32_t off = (uint32_t)take(in, 2), v = (uint32_t)take(in, 4);

	spk_pci_host_cfg_write(host, d->slot, d->pcicfg + 4u, 1, 0);
	spk_pci_host_cfg_write(host, d->slot, d->pcicfg + 8u, 4, off);
	spk_pci_host_cfg_write(host, d->slot, d->pcicfg + 12u, 4, w);
	if (write)
		spk_pci_host_cfg_write(host, d->slot, d->pcicfg + 16u, w > 4 ? 4 : w, v);
	else
		spk_pci_host_cfg_read(host, d->slot, d->pcicfg + 16u, w > 4 ? 4 : w);
}

/* One MSI-X table entry: address (LAPIC or not), data, mask. */
static void msix_entry(struct dev *d, struct in *in)
{
	uint8_t vec = (uint8_t)take(in, 1), fl;
	uint32_t data = (uint32_t)take(in, 4);
	uint64_t e = bar_base(d) + 0x4000 + 16ull * (vec % 4); /* one past the table too */

	fl = (uint8_t)take(in, 1);
	wr(SPK_BUS_MMIO, e, 4, fl & 1 ? data : 0xfee00000u | (fl & 0xf0) << 8);
	wr(SPK_BUS_MMIO, e + 4, 4, fl & 2 ? data >> 16 : 0);
	wr(SPK_BUS_MMIO, e + 8, fl & 4 ? 8 : 4, data);
	wr(SPK_BUS_MMIO, e + 12, 4, fl >> 3 & 1);
}

/* What the host side does meanwhile: keyboard input, a resize, an interrupt. */
static void host_event(struct dev *d, struct in *in)
{
	uint8_t what = (uint8_t)take(in, 1), buf[64];
	size_t n = what >> 2;

	switch (what & 3) {
	case 0:
		memcpy(buf, take_bytes(in, n, &n), n);
		spk_virtio_console_input(con, buf, n);
		break;
	case 1:
		spk_virtio_console_resize(con, (uint16_t)take(in, 2), (uint16_t)take(in, 2));
		break;
	default:
		spk_pci_msix_signal(d->pdev, (uint16_t)((what >> 2) % 8));
		break;
	}
}

static void one_op(struct in *in)
{
	uint8_t op = (uint8_t)take(in, 1);
	unsigned w = widths[(op >> 4) & 3], sel = op >> 6;
	struct dev *d = &devs[sel & 1];

	switch (op & 0xf) {
	case 0: {
		uint64_t port = 0xcf8 + (take(in, 1) & 7);
		wr(SPK_BUS_PIO, port, w, take(in, 4));
		break;
	}
	case 1: {
		uint64_t port = 0xcf8 + (take(in, 1) & 7);
		uint32_t latch = (uint32_t)rd(SPK_BUS_PIO, 0xcf8, 4);
		bool hit;
		uint64_t v = rd_hit(SPK_BUS_PIO, port, w, &hit);

		/* the data port, enabled, reaching 00:xx.0 */
		if (hit && port >= 0xcfc && (latch >> 31) && !(latch & 0x00ff0700u))
			same_as_host((latch >> 11) & 0x1f,
			             (latch & 0xfc) + (uint32_t)(port - 0xcfc), w, v);
		break;
	}
	case 2: {
		uint32_t sf = (uint32_t)take(in, 1), reg = (uint32_t)take(in, 1);
		wr(SPK_BUS_PIO, 0xcf8, 4,
		   0x80000000u | (sf & 0x1f) << 11 | (sf >> 5) << 8 | (reg & 0xfc));
		break;
	}
	case 3: {
		uint64_t off = take(in, 3) & 0xfffff;
		wr(SPK_BUS_MMIO, ECAM + off, w, take(in, 4));
		break;
	}
	case 4: {
		uint64_t off = take(in, 3) & 0xfffff;
		uint64_t v = rd(SPK_BUS_MMIO, ECAM + off, w);

		if (w <= 4 && off % w == 0 && !(off & 0x7000))
			same_as_host((unsigned)(off >> 15), (uint32_t)(off & 0xfff), w, v);
		break;
	}
	case 5: {
		uint64_t off = take(in, 2);
		wr(SPK_BUS_MMIO, bar_base(d) + off, w, take(in, 8));
		break;
	}
	case 6:
		rd(SPK_BUS_MMIO, bar_base(d) + take(in, 2), w);
		break;
	case 7: {
		uint64_t off = take(in, 4) % WIN_SIZE;
		wr(SPK_BUS_MMIO, WIN + off, w, take(in, 8));
		break;
	}
	case 8: {
		uint64_t gpa = take(in, 2);
		size_t n = (size_t)take(in, 1);
		const uint8_t *p = take_bytes(in, n, &n);

		if (gpa + n <= RAM_SIZE)
			memcpy(ram + gpa, p, n);
		break;
	}
	case 9:
		host_event(d, in);
		break;
	case 10:
		driver_start(d, in);
		break;
	case 11:
		pcicfg_access(d, w, sel & 2, in);
		break;
	case 12:
		msix_entry(d, in);
		break;
	case 13:
		spk_pci_host_cfg_write(host, d->slot, d->msix + 2u, 2, (uint32_t)take(in, 2));
		break;
	case 14: {
		uint32_t reg = (uint32_t)take(in, 1);
		spk_pci_host_cfg_write(host, d->slot, reg, w > 4 ? 4 : w, (uint32_t)take(in, 4));
		break;
	}
	default:
		cfg(d, (uint32_t)take(in, 1) | (sel & 2 ? 0x100 : 0), w > 4 ? 4 : w);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = {.p = data, .left = size};

	memset(ram, 0, RAM_SIZE);
	build();
	check_all();
	for (unsigned i = 0; i < MAX_OPS && in.left && !in.end; i++) {
		one_op(&in);
		check_all();
	}
	check_features(&devs[0]);
	check_features(&devs[1]);
	teardown();
	return 0;
}
