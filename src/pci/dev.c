/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A PCI function's configuration space: the type-0 header, memory BARs
 * (sizing, placement, decode), and the capability list.
 *
 * The 4 KiB of config space are bytes with two masks, as in real
 * hardware and QEMU: wmask says which bits a guest write may change, w1c
 * which bits a written 1 clears. A BAR's wmask covers only its address
 * bits above the size, so writing all-ones and reading back gives the
 * size with no special case. After each write the registers with side
 * effects (command, BARs, MSI-X control, device capabilities) are looked
 * at again.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "pci/pci_internal.h"

#define CMD_WRITABLE    0x0547 /* IO, memory, master, parity, SERR, INTx disable */
#define STATUS_W1C      0xf900 /* error bits: written 1s clear them */
#define CAP_START       0x40
#define CAP_END         0x100 /* mechanism #1 reaches the first 256 bytes */
#define BAR_MEM_64      0x4
#define BAR_MEM_PREF    0x8
#define BAR_FLAG_BITS   0xfull
#define HEADER_TYPE_STD 0x00

static void init_header(struct spk_pci_dev *d, const struct spk_pci_dev_config *c)
{
	spk_put_le(d->cfg + SPK_PCI_VENDOR_ID, c->vendor, 2);
	spk_put_le(d->cfg + SPK_PCI_DEVICE_ID, c->device, 2);
	d->cfg[SPK_PCI_REVISION] = c->revision;
	spk_put_le(d->cfg + SPK_PCI_CLASS_PROG, c->class_code, 3);
	d->cfg[SPK_PCI_HEADER_TYPE] = HEADER_TYPE_STD;
	spk_put_le(d->cfg + SPK_PCI_SUBSYS_VENDOR, c->subsys_vendor, 2);
	spk_put_le(d->cfg + SPK_PCI_SUBSYS_ID, c->subsys_id, 2);
	d->cfg[SPK_PCI_INT_PIN] = c->irq_pin;
	d->cfg[SPK_PCI_INT_LINE] = 0xff; /* "unknown": firmware did not route it */
	spk_put_le(d->wmask + SPK_PCI_COMMAND, CMD_WRITABLE, 2);
	spk_put_le(d->w1c + SPK_PCI_STATUS, STATUS_W1C, 2);
	d->wmask[SPK_PCI_CACHE_LINE] = 0xff;
	d->wmask[SPK_PCI_LATENCY] = 0xff;
	d->wmask[SPK_PCI_INT_LINE] = 0xff;
}

int spk_pci_dev_new(const struct spk_pci_dev_config *c, struct spk_pci_dev **out)
{
	struct spk_pci_dev *d;

	if (!c || !out || !c->name || !c->ops)
		return spk_fail(EINVAL, "pci: a device needs a config with a name and ops");
	if (c->irq_pin > 4)
		return spk_fail(EINVAL, "pci: %s: interrupt pin %u is not 0-4", c->name,
		                c->irq_pin);
	if (c->vendor == 0xffff || c->vendor == 0)
		return spk_fail(EINVAL, "pci: %s: vendor id 0x%04x means no device", c->name,
		                c->vendor);
	d = calloc(1, sizeof(*d));
	if (!d)
		return spk_fail(ENOMEM, "pci: %s: out of memory", c->name);
	snprintf(d->base_name, sizeof(d->base_name), "%s", c->name);
	snprintf(d->name, sizeof(d->name), "%s", c->name);
	d->ops = *c->ops;
	d->opaque = c->opaque;
	d->irq_pin = c->irq_pin;
	d->next_cap = CAP_START;
	pthread_mutex_init(&d->cfg_lock, NULL);
	pthread_mutex_init(&d->irq_lock, NULL);
	init_header(d, c);
	*out = d;
	return 0;
}

void spk_pci_dev_free(struct spk_pci_dev *d)
{
	if (!d)
		return;
	spk_pci_msix_fini(d); /* finds the VM through the host: first */
	if (d->host && d != spk_pci_host_bridge(d->host))
		spk_pci_host_detach(d->host, d);
	pthread_mutex_destroy(&d->cfg_lock);
	pthread_mutex_destroy(&d->irq_lock);
	free(d);
}

const char *spk_pci_dev_name(const struct spk_pci_dev *d)
{
	return d ? d->name : "(no device)";
}

struct spk_vm *spk_pci_dev_vm(const struct spk_pci_dev *d)
{
	if (!d) {
		spk_fail(EINVAL, "pci: dev_vm needs a device");
		return NULL;
	}
	return d->host ? spk_pci_host_vm(d->host) : NULL;
}

uint16_t spk_pci_dev_command(const struct spk_pci_dev *d)
{
	return (uint16_t)atomic_load(&((struct spk_pci_dev *)d)->command);
}

uint64_t spk_pci_dev_bar_addr(struct spk_pci_dev *d, unsigned bar)
{
	uint64_t a = 0;

	if (bar >= SPK_PCI_BARS)
		return 0;
	pthread_mutex_lock(&d->cfg_lock);
	a = d->bars[bar].addr;
	pthread_mutex_unlock(&d->cfg_lock);
	return a;
}

void spk_pci_cfg_set(struct spk_pci_dev *d, uint32_t off, const void *buf, size_t len)
{
	if (off < SPK_PCI_CFG_SIZE && len <= SPK_PCI_CFG_SIZE - off)
		memcpy(d->cfg + off, buf, len);
}

void spk_pci_cfg_get(struct spk_pci_dev *d, uint32_t off, void *buf, size_t len)
{
	if (off < SPK_PCI_CFG_SIZE && len <= SPK_PCI_CFG_SIZE - off)
		memcpy(buf, d->cfg + off, len);
	else
		memset(buf, 0xff, len);
}

/* ---- setup ---------------------------------------------------------------------- */

static bool placed(const struct spk_pci_dev *d)
{
	return d->host != NULL;
}

int spk_pci_dev_add_bar(struct spk_pci_dev *d, unsigned bar, uint64_t size, unsigned flags)
{
	bool is64 = flags & SPK_PCI_BAR_64;

	if (!d)
		return spk_fail(EINVAL, "pci: add_bar without a device");
	if (placed(d))
		return spk_fail(EBUSY, "pci: %s: BARs are fixed once the device is on the bus",
		                d->name);
	if (bar >= SPK_PCI_BARS || (is64 && bar + 1 >= SPK_PCI_BARS))
		return spk_fail(EINVAL, "pci: %s: no BAR %u%s", d->name, bar,
		                is64 ? " (64-bit)" : "");
	if (size < 16 || (size & (size - 1)) || (!is64 && size > (1ull << 31)))
		return spk_fail(EINVAL,
		                "pci: %s: BAR %u size 0x%" PRIx64 " is not a power of two "
		                "from 16%s",
		                d->name, bar, size, is64 ? "" : " to 2 GiB");
	if (d->bars[bar].size || (is64 && d->bars[bar + 1].size) ||
	    (bar > 0 && d->bars[bar - 1].flags & SPK_PCI_BAR_64))
		return spk_fail(EEXIST, "pci: %s: BAR %u is taken", d->name, bar);
	d->bars[bar] = (struct pci_bar){.size = size, .flags = flags};
	uint32_t lo = (is64 ? BAR_MEM_64 : 0) | (flags & SPK_PCI_BAR_PREFETCH ? BAR_MEM_PREF : 0);
	uint64_t mask = ~(size - 1) & ~BAR_FLAG_BITS;
	spk_put_le(d->cfg + SPK_PCI_BAR0 + 4 * bar, lo, 4);
	spk_put_le(d->wmask + SPK_PCI_BAR0 + 4 * bar, (uint32_t)mask, 4);
	if (is64) {
		d->bars[bar + 1].flags = SPK_PCI_BAR_64; /* the upper half: no size of its own */
		spk_put_le(d->wmask + SPK_PCI_BAR0 + 4 * (bar + 1), (uint32_t)(mask >> 32), 4);
	}
	return 0;
}

int spk_pci_dev_add_cap(struct spk_pci_dev *d, uint8_t id, const void *data, uint8_t len,
                        const void *wmask, bool notify, uint8_t *off)
{
	uint16_t at;

	if (!d || !data || len < 2)
		return spk_fail(EINVAL, "pci: a capability needs a device and at least 2 bytes");
	if (placed(d))
		return spk_fail(EBUSY,
		                "pci: %s: capabilities are fixed once the device is on the "
		                "bus",
		                d->name);
	at = d->next_cap;
	if (at + len > CAP_END)
		return spk_fail(ENOSPC,
		                "pci: %s: capability 0x%02x of %u bytes does not fit below "
		                "0x100",
		                d->name, id, len);
	memcpy(d->cfg + at, data, len);
	d->cfg[at] = id;
	d->cfg[at + 1] = 0;
	if (wmask)
		memcpy(d->wmask + at, wmask, len);
	d->wmask[at] = d->wmask[at + 1] = 0;
	if (d->last_cap)
		d->cfg[d->last_cap + 1] = (uint8_t)at;
	else
		d->cfg[SPK_PCI_CAP_PTR] = (uint8_t)at;
	spk_put_le(d->cfg + SPK_PCI_STATUS,
	           spk_get_le(d->cfg + SPK_PCI_STATUS, 2) | SPK_PCI_STATUS_CAPS, 2);
	d->last_cap = (uint8_t)at;
	d->next_cap = (uint16_t)((at + len + 3) & ~3u);
	if (notify) {
		if (!d->notify_lo)
			d->notify_lo = at;
		d->notify_hi = (uint16_t)(at + len); /* up to 0x100: not a uint8_t */
	}
	if (off)
		*off = (uint8_t)at;
	return 0;
}

int spk_pci_dev_add_msix(struct spk_pci_dev *d, uint16_t nvec, unsigned bar, uint32_t table_off,
                         uint32_t pba_off)
{
	uint8_t cap[12] = {0}, wm[12] = {0};
	uint8_t off = 0;
	int rc;

	if (!d)
		return spk_fail(EINVAL, "pci: add_msix without a device");
	if (d->has_msix)
		return spk_fail(EEXIST, "pci: %s already has MSI-X", d->name);
	if ((rc = spk_pci_msix_init(d, nvec, bar, table_off, pba_off)) < 0)
		return rc;
	spk_put_le(cap + 2, (uint16_t)(nvec - 1), 2);
	spk_put_le(cap + 4, table_off | bar, 4);
	spk_put_le(cap + 8, pba_off | bar, 4);
	spk_put_le(wm + 2, SPK_PCI_MSIX_ENABLE | SPK_PCI_MSIX_MASKALL, 2);
	if ((rc = spk_pci_dev_add_cap(d, SPK_PCI_CAP_ID_MSIX, cap, sizeof(cap), wm, false, &off)) <
	    0) {
		spk_pci_msix_fini(d);
		return rc;
	}
	d->msix.cap = off;
	d->has_msix = true;
	return 0;
}

/* The host placed the device: its name gets the address, BARs their place. */
void spk_pci_dev_placed(struct spk_pci_dev *d, struct spk_pci_host *h, unsigned slot)
{
	d->host = h;
	d->slot = slot;
	snprintf(d->name, sizeof(d->name), "%.32s (00:%02x.0)", d->base_name, slot);
}

void spk_pci_dev_set_bar(struct spk_pci_dev *d, unsigned bar, uint64_t addr)
{
	uint32_t lo = (uint32_t)spk_get_le(d->cfg + SPK_PCI_BAR0 + 4 * bar, 4);

	spk_put_le(d->cfg + SPK_PCI_BAR0 + 4 * bar, (lo & BAR_FLAG_BITS) | (uint32_t)addr, 4);
	if (d->bars[bar].flags & SPK_PCI_BAR_64)
		spk_put_le(d->cfg + SPK_PCI_BAR0 + 4 * (bar + 1), addr >> 32, 4);
}

/* ---- config accesses -------------------------------------------------------------- */

static bool overlaps(uint32_t off, unsigned width, uint32_t lo, uint32_t hi)
{
	return off < hi && lo < off + width;
}

static bool touches_notify(const struct spk_pci_dev *d, uint32_t off, unsigned width)
{
	return d->notify_hi && overlaps(off, width, d->notify_lo, d->notify_hi);
}

uint32_t spk_pci_dev_cfg_read(struct spk_pci_dev *d, uint32_t off, unsigned width)
{
	uint32_t v;

	pthread_mutex_lock(&d->cfg_lock);
	if (touches_notify(d, off, width) && d->ops.cfg_reading)
		d->ops.cfg_reading(d->opaque, off, width);
	v = (uint32_t)spk_get_le(d->cfg + off, width);
	pthread_mutex_unlock(&d->cfg_lock);
	/* the INTx status bit follows the pin, which lives under irq_lock */
	if (overlaps(off, width, SPK_PCI_STATUS, SPK_PCI_STATUS + 1) &&
	    __atomic_load_n(&d->intx_want, __ATOMIC_RELAXED))
		v |= (uint32_t)SPK_PCI_STATUS_INTX << (8 * (SPK_PCI_STATUS - off));
	return v;
}

static uint64_t bar_value(const struct spk_pci_dev *d, unsigned bar)
{
	uint64_t v = spk_get_le(d->cfg + SPK_PCI_BAR0 + 4 * bar, 4) & ~BAR_FLAG_BITS;

	if (d->bars[bar].flags & SPK_PCI_BAR_64)
		v |= spk_get_le(d->cfg + SPK_PCI_BAR0 + 4 * (bar + 1), 4) << 32;
	return v;
}

/* Where BAR bar should be decoded now (0: nowhere); logs odd places once. */
static uint64_t bar_target(struct spk_pci_dev *d, unsigned bar)
{
	struct pci_bar *b = &d->bars[bar];
	uint64_t addr = bar_value(d, bar);

	if (!(atomic_load(&d->command) & SPK_PCI_CMD_MEMORY) || addr == 0)
		return 0;
	if (spk_pci_host_in_window(d->host, addr, b->size))
		return addr;
	if (!b->warned) {
		b->warned = true;
		spk_log(SPK_LOG_WARN,
		        "pci: %s: BAR %u at 0x%" PRIx64 "+0x%" PRIx64 " is outside the "
		        "PCI window; not decoding it",
		        d->name, bar, addr, b->size);
	}
	return 0;
}

static void update_bars(struct spk_pci_dev *d)
{
	for (unsigned i = 0; i < SPK_PCI_BARS; i++) {
		struct pci_bar *b = &d->bars[i];
		uint64_t to;

		if (!b->size)
			continue; /* absent, or the upper half of a 64-bit BAR */
		to = bar_target(d, i);
		if (to == b->addr)
			continue;
		to = spk_pci_host_bar_update(d->host, d, i, to);
		if (to == b->addr)
			continue;
		b->addr = to;
		if (d->ops.bar_moved)
			d->ops.bar_moved(d->opaque, i, to);
	}
}

static void store(struct spk_pci_dev *d, uint32_t off, unsigned width, uint32_t value)
{
	for (unsigned i = 0; i < width; i++) {
		uint8_t b = (uint8_t)(value >> (8 * i));
		uint32_t o = off + i;

		d->cfg[o] = (uint8_t)((d->cfg[o] & ~d->wmask[o]) | (b & d->wmask[o]));
		d->cfg[o] &= (uint8_t) ~(b & d->w1c[o]);
	}
}

void spk_pci_dev_cfg_write(struct spk_pci_dev *d, uint32_t off, unsigned width, uint32_t value)
{
	pthread_mutex_lock(&d->cfg_lock);
	store(d, off, width, value);
	if (overlaps(off, width, SPK_PCI_COMMAND, SPK_PCI_COMMAND + 2)) {
		atomic_store(&d->command, (unsigned)spk_get_le(d->cfg + SPK_PCI_COMMAND, 2));
		spk_pci_intx_update(d);
	}
	if (overlaps(off, width, SPK_PCI_COMMAND, SPK_PCI_COMMAND + 2) ||
	    overlaps(off, width, SPK_PCI_BAR0, SPK_PCI_BAR0 + 4 * SPK_PCI_BARS))
		update_bars(d);
	if (d->has_msix && overlaps(off, width, d->msix.cap + 2u, d->msix.cap + 4u))
		spk_pci_msix_control(d, (uint16_t)spk_get_le(d->cfg + d->msix.cap + 2, 2));
	if (touches_notify(d, off, width) && d->ops.cfg_written)
		d->ops.cfg_written(d->opaque, off, width);
	pthread_mutex_unlock(&d->cfg_lock);
}

/* ---- BAR accesses ------------------------------------------------------------------- */

uint64_t spk_pci_dev_bar_read(struct spk_pci_dev *d, unsigned bar, uint64_t off, unsigned width)
{
	if (d->has_msix && spk_pci_msix_owns(d, bar, off))
		return spk_pci_msix_bar_read(d, off, width);
	if (!d->ops.bar_read)
		return ~0ull;
	return d->ops.bar_read(d->opaque, bar, off, width);
}

void spk_pci_dev_bar_write(struct spk_pci_dev *d, unsigned bar, uint64_t off, unsigned width,
                           uint64_t value)
{
	if (d->has_msix && spk_pci_msix_owns(d, bar, off)) {
		spk_pci_msix_bar_write(d, off, width, value);
		return;
	}
	if (d->ops.bar_write)
		d->ops.bar_write(d->opaque, bar, off, width, value);
}

/* After a snapshot load replaced the config space (state.c): decode the BARs where it says. */
void spk_pci_dev_update_bars(struct spk_pci_dev *d)
{
	update_bars(d);
}
