/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The PCI host bridge: bus 0 with up to 32 single-function devices (the
 * bridge itself in slot 0), reached through configuration mechanism #1
 * and ECAM; the BAR window, dispatched to BARs by address; INTx lines
 * shared between slots, counted so a line stays up while any device on it
 * asserts it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "pci/pci_internal.h"

#define CF8_PORT      0xcf8
#define CFC_PORT      0xcfc
#define CF8_ENABLE    0x80000000u
#define CF8_KEPT      0x80fffffcu /* enable, bus, device, function, register */
#define ECAM_SIZE     0x100000ull /* bus 0 */
#define BRIDGE_VENDOR 0x8086
#define BRIDGE_DEVICE 0x0d57
#define BRIDGE_CLASS  0x060000 /* host bridge */
#define BAR_ALIGN_MIN 4096ull
#define MAX_MAPS      (SPK_PCI_SLOTS * SPK_PCI_BARS)

struct bar_map {
	uint64_t base, size;
	struct spk_pci_dev *d;
	unsigned bar;
};

struct spk_pci_host {
	struct spk_pci_host_config cfg;
	struct spk_pci_dev *slots[SPK_PCI_SLOTS];
	struct spk_pci_dev *bridge;
	uint64_t next_bar; /* placement cursor in the window */

	pthread_mutex_t lock; /* cf8, intx, rl */
	uint32_t cf8;
	unsigned intx[SPK_PCI_INTX_LINES]; /* devices asserting each line */
	struct spk_dev_ratelimit rl;

	pthread_rwlock_t map_lock;
	struct bar_map map[MAX_MAPS];
	unsigned n_map;
};

struct spk_vm *spk_pci_host_vm(const struct spk_pci_host *h)
{
	return h->cfg.vm;
}

bool spk_pci_host_in_window(const struct spk_pci_host *h, uint64_t addr, uint64_t size)
{
	uint64_t off = addr - h->cfg.mmio_start;

	return addr >= h->cfg.mmio_start && off < h->cfg.mmio_size &&
	       size <= h->cfg.mmio_size - off;
}

void spk_pci_host_msi(struct spk_pci_host *h, const struct spk_msi *msi)
{
	if (h->cfg.msi)
		h->cfg.msi(h->cfg.msi_ctx, msi);
}

void spk_pci_host_intx(struct spk_pci_host *h, unsigned slot, unsigned pin, bool level)
{
	uint32_t gsi = spk_pci_intx_gsi(h->cfg.intx.gsi, slot, pin);
	unsigned line = gsi - h->cfg.intx.gsi;
	bool change;

	pthread_mutex_lock(&h->lock);
	if (level)
		change = h->intx[line]++ == 0;
	else
		change = h->intx[line] && --h->intx[line] == 0;
	if (change) {
		struct spk_irq_line l = h->cfg.intx;

		l.gsi = gsi;
		spk_irq_set(&l, level);
	}
	pthread_mutex_unlock(&h->lock);
}

/* ---- the BAR map -------------------------------------------------------------- */

static void map_remove(struct spk_pci_host *h, struct spk_pci_dev *d, unsigned bar)
{
	for (unsigned i = 0; i < h->n_map; i++) {
		if (h->map[i].d == d && h->map[i].bar == bar) {
			h->map[i] = h->map[--h->n_map];
			return;
		}
	}
}

static const struct bar_map *map_overlap(const struct spk_pci_host *h, uint64_t base, uint64_t size)
{
	for (unsigned i = 0; i < h->n_map; i++) {
		const struct bar_map *m = &h->map[i];

		if (base < m->base + m->size && m->base < base + size)
			return m;
	}
	return NULL;
}

uint64_t spk_pci_host_bar_update(struct spk_pci_host *h, struct spk_pci_dev *d, unsigned bar,
                                 uint64_t addr)
{
	uint64_t size = d->bars[bar].size;
	const struct bar_map *other;

	pthread_rwlock_wrlock(&h->map_lock);
	map_remove(h, d, bar);
	if (addr && (other = map_overlap(h, addr, size)) != NULL) {
		spk_dev_log(&d->rl, d->name, SPK_LOG_WARN,
		            "pci: %s: BAR %u at 0x%" PRIx64 "+0x%" PRIx64 " overlaps BAR %u of %s; "
		            "not decoding it",
		            d->name, bar, addr, size, other->bar, other->d->name);
		addr = 0;
	}
	if (addr && h->n_map < MAX_MAPS)
		h->map[h->n_map++] =
		    (struct bar_map){.base = addr, .size = size, .d = d, .bar = bar};
	pthread_rwlock_unlock(&h->map_lock);
	return addr;
}

/* The BAR holding [addr, addr + width), copied out of the map. */
static bool map_find(struct spk_pci_host *h, uint64_t addr, unsigned width, struct bar_map *out)
{
	bool found = false;

	pthread_rwlock_rdlock(&h->map_lock);
	for (unsigned i = 0; i < h->n_map && !found; i++) {
		const struct bar_map *m = &h->map[i];

		if (addr >= m->base && addr - m->base < m->size &&
		    width <= m->size - (addr - m->base)) {
			*out = *m;
			found = true;
		}
	}
	pthread_rwlock_unlock(&h->map_lock);
	return found;
}

static void window_miss(struct spk_pci_host *h, const char *dir, uint64_t addr, unsigned width)
{
	pthread_mutex_lock(&h->lock);
	spk_dev_log(&h->rl, "pci", SPK_LOG_WARN,
	            "pci: %s of %u bytes at 0x%" PRIx64 " in the PCI window hits no BAR", dir,
	            width, addr);
	pthread_mutex_unlock(&h->lock);
}

static uint64_t window_read(void *opaque, uint64_t off, unsigned width,
                            const struct spk_bus_access *who)
{
	struct spk_pci_host *h = opaque;
	struct bar_map m;

	if (!map_find(h, who->addr, width, &m)) {
		window_miss(h, "read", who->addr, width);
		return ~0ull;
	}
	return spk_pci_dev_bar_read(m.d, m.bar, who->addr - m.base, width);
}

static void window_write(void *opaque, uint64_t off, unsigned width, uint64_t value,
                         const struct spk_bus_access *who)
{
	struct spk_pci_host *h = opaque;
	struct bar_map m;

	if (!map_find(h, who->addr, width, &m)) {
		window_miss(h, "write", who->addr, width);
		return;
	}
	spk_pci_dev_bar_write(m.d, m.bar, who->addr - m.base, width, value);
}

static const struct spk_bus_ops window_ops = {window_read, window_write};

/* ---- config accesses -------------------------------------------------------------- */

static struct spk_pci_dev *function(struct spk_pci_host *h, unsigned bus, unsigned dev, unsigned fn)
{
	if (bus != 0 || fn != 0 || dev >= SPK_PCI_SLOTS)
		return NULL;
	return h->slots[dev];
}

static bool cfg_access_ok(uint32_t off, unsigned width)
{
	return (width == 1 || width == 2 || width == 4) && off < SPK_PCI_CFG_SIZE &&
	       width <= SPK_PCI_CFG_SIZE - off;
}

uint32_t spk_pci_host_cfg_read(struct spk_pci_host *h, unsigned slot, uint32_t off, unsigned width)
{
	struct spk_pci_dev *d;

	if (!h)
		spk_fail(EINVAL, "pci: host_cfg_read needs a host");
	d = h ? function(h, 0, slot, 0) : NULL;
	if (!d || !cfg_access_ok(off, width))
		return (uint32_t)((1ull << (8 * (width > 4 ? 4 : width))) - 1);
	return spk_pci_dev_cfg_read(d, off, width);
}

void spk_pci_host_cfg_write(struct spk_pci_host *h, unsigned slot, uint32_t off, unsigned width,
                            uint32_t value)
{
	struct spk_pci_dev *d;

	if (!h) {
		spk_fail(EINVAL, "pci: host_cfg_write needs a host");
		return;
	}
	d = function(h, 0, slot, 0);
	if (d && cfg_access_ok(off, width))
		spk_pci_dev_cfg_write(d, off, width, value);
}

/* Mechanism #1: the address latch at 0xCF8, dword accesses only. */
static uint64_t cf8_read(void *opaque, uint64_t off, unsigned width,
                         const struct spk_bus_access *who)
{
	struct spk_pci_host *h = opaque;

	if (off != 0 || width != 4)
		return ~0ull;
	pthread_mutex_lock(&h->lock);
	uint32_t v = h->cf8;
	pthread_mutex_unlock(&h->lock);
	return v;
}

static void cf8_write(void *opaque, uint64_t off, unsigned width, uint64_t value,
                      const struct spk_bus_access *who)
{
	struct spk_pci_host *h = opaque;

	if (off != 0 || width != 4)
		return; /* byte writes to 0xCF9/0xCFB are other registers on a PC */
	pthread_mutex_lock(&h->lock);
	h->cf8 = (uint32_t)value & CF8_KEPT;
	pthread_mutex_unlock(&h->lock);
}

/* The function and register 0xCFC + off reaches, or NULL (then all-ones). */
static struct spk_pci_dev *cfc_target(struct spk_pci_host *h, uint64_t off, uint32_t *reg)
{
	pthread_mutex_lock(&h->lock);
	uint32_t a = h->cf8;
	pthread_mutex_unlock(&h->lock);

	if (!(a & CF8_ENABLE))
		return NULL;
	*reg = (a & 0xfc) + (uint32_t)off;
	return function(h, (a >> 16) & 0xff, (a >> 11) & 0x1f, (a >> 8) & 7);
}

/* The bus keeps the access inside 0xCFC-0xCFF: at most 4 bytes from off. */
static uint64_t cfc_read(void *opaque, uint64_t off, unsigned width,
                         const struct spk_bus_access *who)
{
	uint32_t reg = 0;
	struct spk_pci_dev *d = cfc_target(opaque, off, &reg);

	if (!d || width > 4)
		return ~0ull;
	return spk_pci_dev_cfg_read(d, reg, width);
}

static void cfc_write(void *opaque, uint64_t off, unsigned width, uint64_t value,
                      const struct spk_bus_access *who)
{
	uint32_t reg = 0;
	struct spk_pci_dev *d = cfc_target(opaque, off, &reg);

	if (d && width <= 4)
		spk_pci_dev_cfg_write(d, reg, width, (uint32_t)value);
}

/* ECAM: bus 0 only; naturally aligned accesses of at most a dword. */
static struct spk_pci_dev *ecam_target(struct spk_pci_host *h, uint64_t off, unsigned width,
                                       uint32_t *reg)
{
	if (width > 4 || off % width)
		return NULL;
	*reg = (uint32_t)(off & 0xfff);
	return function(h, (unsigned)(off >> 20), (off >> 15) & 0x1f, (off >> 12) & 7);
}

static uint64_t ecam_read(void *opaque, uint64_t off, unsigned width,
                          const struct spk_bus_access *who)
{
	uint32_t reg = 0;
	struct spk_pci_dev *d = ecam_target(opaque, off, width, &reg);

	return d ? spk_pci_dev_cfg_read(d, reg, width) : ~0ull;
}

static void ecam_write(void *opaque, uint64_t off, unsigned width, uint64_t value,
                       const struct spk_bus_access *who)
{
	uint32_t reg = 0;
	struct spk_pci_dev *d = ecam_target(opaque, off, width, &reg);

	if (d)
		spk_pci_dev_cfg_write(d, reg, width, (uint32_t)value);
}

static const struct spk_bus_ops cf8_ops = {cf8_read, cf8_write};
static const struct spk_bus_ops cfc_ops = {cfc_read, cfc_write};
static const struct spk_bus_ops ecam_ops = {ecam_read, ecam_write};

/* ---- creation and placement --------------------------------------------------------- */

static int register_on_bus(struct spk_pci_host *h)
{
	struct spk_bus *bus = h->cfg.bus;
	int rc = 0;

	if (!h->cfg.no_cf8 && ((rc = spk_bus_register(bus, SPK_BUS_PIO, CF8_PORT, 4, "pci-cf8",
	                                              &cf8_ops, h, SPK_BUS_LOCKLESS)) < 0 ||
	                       (rc = spk_bus_register(bus, SPK_BUS_PIO, CFC_PORT, 4, "pci-cfc",
	                                              &cfc_ops, h, SPK_BUS_LOCKLESS)) < 0))
		return rc;
	if (h->cfg.ecam && (rc = spk_bus_register(bus, SPK_BUS_MMIO, h->cfg.ecam, ECAM_SIZE,
	                                          "pci-ecam", &ecam_ops, h, SPK_BUS_LOCKLESS)) < 0)
		return rc;
	return spk_bus_register(bus, SPK_BUS_MMIO, h->cfg.mmio_start, h->cfg.mmio_size,
	                        "pci-window", &window_ops, h, SPK_BUS_LOCKLESS);
}

static int check_host_config(const struct spk_pci_host_config *c)
{
	uint64_t end;

	if (!c || !c->bus)
		return spk_fail(EINVAL, "pci: the host needs a config with a bus");
	if (!c->mmio_size || !spk_add_ok(c->mmio_start, c->mmio_size, &end) ||
	    (c->mmio_start | c->mmio_size) % BAR_ALIGN_MIN)
		return spk_fail(EINVAL,
		                "pci: BAR window 0x%" PRIx64 "+0x%" PRIx64 " is empty, "
		                "wraps or is not page-aligned",
		                c->mmio_start, c->mmio_size);
	if (c->ecam % ECAM_SIZE)
		return spk_fail(EINVAL, "pci: ECAM base 0x%" PRIx64 " is not 1 MiB-aligned",
		                c->ecam);
	return 0;
}

static int add_bridge(struct spk_pci_host *h)
{
	static const struct spk_pci_dev_ops none = {0};
	const struct spk_pci_dev_config bc = {
	    .name = "host-bridge",
	    .vendor = BRIDGE_VENDOR,
	    .device = BRIDGE_DEVICE,
	    .class_code = BRIDGE_CLASS,
	    .ops = &none,
	};
	int rc = spk_pci_dev_new(&bc, &h->bridge);

	if (rc < 0)
		return rc;
	return spk_pci_host_add(h, h->bridge, 0, NULL);
}

int spk_pci_host_new(const struct spk_pci_host_config *cfg, struct spk_pci_host **out)
{
	struct spk_pci_host *h;
	int rc;

	if ((rc = check_host_config(cfg)) < 0)
		return rc;
	if (!out)
		return spk_fail(EINVAL, "pci: host_new without an out pointer");
	h = calloc(1, sizeof(*h));
	if (!h)
		return spk_fail(ENOMEM, "pci: out of memory for the host");
	h->cfg = *cfg;
	h->next_bar = cfg->mmio_start;
	pthread_mutex_init(&h->lock, NULL);
	pthread_rwlock_init(&h->map_lock, NULL);
	if ((rc = add_bridge(h)) < 0 || (rc = register_on_bus(h)) < 0) {
		spk_pci_host_free(h);
		return rc;
	}
	*out = h;
	return 0;
}

void spk_pci_host_free(struct spk_pci_host *h)
{
	if (!h)
		return;
	/* the devices outlive us (the caller owns them): they forget us, so
	 * freeing one later does not reach back into freed memory */
	for (unsigned s = 1; s < SPK_PCI_SLOTS; s++)
		if (h->slots[s])
			h->slots[s]->host = NULL;
	spk_pci_dev_free(h->bridge);
	pthread_rwlock_destroy(&h->map_lock);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

/* Place each BAR naturally aligned from the cursor up; all or nothing. */
static int place_bars(struct spk_pci_host *h, struct spk_pci_dev *d)
{
	uint64_t at[SPK_PCI_BARS] = {0}, cur = h->next_bar;
	uint64_t end = h->cfg.mmio_start + h->cfg.mmio_size;

	for (unsigned i = 0; i < SPK_PCI_BARS; i++) {
		uint64_t size = d->bars[i].size;
		uint64_t align = size > BAR_ALIGN_MIN ? size : BAR_ALIGN_MIN;

		if (!size)
			continue;
		cur = (cur + align - 1) & ~(align - 1);
		if (cur < h->next_bar || cur > end || size > end - cur)
			return spk_fail(ENOSPC,
			                "pci: %s: BAR %u (0x%" PRIx64 " bytes) does not fit "
			                "in the PCI window",
			                d->name, i, size);
		at[i] = cur;
		cur += size;
	}
	for (unsigned i = 0; i < SPK_PCI_BARS; i++)
		if (at[i])
			spk_pci_dev_set_bar(d, i, at[i]);
	h->next_bar = cur;
	return 0;
}

static int pick_slot(struct spk_pci_host *h, struct spk_pci_dev *d, int slot, unsigned *out)
{
	if (slot >= SPK_PCI_SLOTS || (slot == 0 && d != h->bridge))
		return spk_fail(EINVAL, "pci: %s: slot %d is not 1-31", d->base_name, slot);
	if (slot >= 0) {
		if (h->slots[slot])
			return spk_fail(EEXIST, "pci: %s: slot %d already holds %s", d->base_name,
			                slot, h->slots[slot]->name);
		*out = (unsigned)slot;
		return 0;
	}
	for (unsigned s = 1; s < SPK_PCI_SLOTS; s++) {
		if (!h->slots[s]) {
			*out = s;
			return 0;
		}
	}
	return spk_fail(ENOSPC, "pci: %s: all 31 slots are taken", d->base_name);
}

int spk_pci_host_add(struct spk_pci_host *h, struct spk_pci_dev *d, int slot, unsigned *slot_out)
{
	unsigned s = 0;
	int rc;

	if (!h || !d)
		return spk_fail(EINVAL, "pci: host_add needs a host and a device");
	if (d->host)
		return spk_fail(EEXIST, "pci: %s is already on a bus", d->name);
	if ((rc = pick_slot(h, d, slot, &s)) < 0)
		return rc;
	spk_pci_dev_placed(d, h, s);
	if ((rc = place_bars(h, d)) < 0) {
		d->host = NULL;
		return rc;
	}
	h->slots[s] = d;
	if (slot_out)
		*slot_out = s;
	return 0;
}

/* A device freed while its host lives: take it off its slot and out of
 * the BAR window, so a later config or BAR access finds no function
 * instead of freed memory (spk_pci_dev_free). */
void spk_pci_host_detach(struct spk_pci_host *h, struct spk_pci_dev *d)
{
	pthread_rwlock_wrlock(&h->map_lock);
	for (unsigned bar = 0; bar < SPK_PCI_BARS; bar++)
		map_remove(h, d, bar);
	pthread_rwlock_unlock(&h->map_lock);
	pthread_mutex_lock(&h->lock);
	if (d->slot < SPK_PCI_SLOTS && h->slots[d->slot] == d)
		h->slots[d->slot] = NULL;
	pthread_mutex_unlock(&h->lock);
	d->host = NULL;
}

/* ---- for state.c ---- */

uint32_t spk_pci_host_cf8(struct spk_pci_host *h, const uint32_t *set)
{
	uint32_t v;

	pthread_mutex_lock(&h->lock);
	if (set)
		h->cf8 = *set & CF8_KEPT;
	v = h->cf8;
	pthread_mutex_unlock(&h->lock);
	return v;
}

struct spk_pci_dev *spk_pci_host_bridge(struct spk_pci_host *h)
{
	return h->bridge;
}
