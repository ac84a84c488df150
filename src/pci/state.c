// SPDX-License-Identifier: Apache-2.0
/*
 * PCI state for snapshots: a function's configuration space, MSI-X table
 * and pending bits, and the host bridge's address latch.
 *
 * A function's state is part of its owner's section (the virtio transport
 * saves it before its own fields). Loading is in two steps so an owner
 * can check all of its section before changing anything: read (every
 * value checked, kept aside), then apply. The check of the configuration
 * space is the one the guest is held to: a byte may differ from this
 * device's own only in bits the guest can write (or clear), so a file
 * cannot change IDs, capabilities, BAR sizes or the MSI-X layout.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <sparkler/pci.h>
#include <sparkler/snapshot.h>

#include "core/internal.h"
#include "pci/pci_internal.h"

#define ENTRY 16

struct spk_pci_dev_state {
	uint8_t slot;
	uint8_t cfg[SPK_PCI_CFG_SIZE];
	uint16_t nvec;
	struct msix_vec *vec; /* addr_lo, addr_hi, data, ctrl, pending */
};

int spk_pci_dev_state_save(struct spk_pci_dev *d, struct spk_snap_writer *w)
{
	uint8_t *table = NULL, *pba = NULL;
	uint16_t nvec;

	if (!d || !w)
		return spk_fail(EINVAL, "pci: state save needs a device and a writer");
	nvec = d->has_msix ? d->msix.nvec : 0;
	table = calloc((size_t)nvec * ENTRY + 1, 1);
	pba = calloc((size_t)nvec / 8 + 1, 1);
	if (!table || !pba) {
		free(table);
		free(pba);
		return spk_fail(ENOMEM, "pci: %s: out of memory", d->name);
	}
	pthread_mutex_lock(&d->cfg_lock);
	spk_snap_put_u8(w, "pci.slot", (uint8_t)d->slot);
	spk_snap_put_bytes(w, "pci.cfg", d->cfg, sizeof(d->cfg));
	pthread_mutex_lock(&d->irq_lock);
	for (unsigned i = 0; i < nvec; i++) {
		const struct msix_vec *v = &d->msix.vec[i];

		spk_put_le(table + i * ENTRY, v->addr_lo, 4);
		spk_put_le(table + i * ENTRY + 4, v->addr_hi, 4);
		spk_put_le(table + i * ENTRY + 8, v->data, 4);
		spk_put_le(table + i * ENTRY + 12, v->ctrl, 4);
		if (v->pending)
			pba[i / 8] |= (uint8_t)(1u << (i % 8));
	}
	pthread_mutex_unlock(&d->irq_lock);
	pthread_mutex_unlock(&d->cfg_lock);
	spk_snap_put_u16(w, "pci.msix_vectors", nvec);
	spk_snap_put_bytes(w, "pci.msix_table", table, (size_t)nvec * ENTRY);
	spk_snap_put_bytes(w, "pci.msix_pba", pba, (nvec + 7u) / 8);
	free(table);
	free(pba);
	return spk_snap_writer_error(w);
}

void spk_pci_dev_state_free(struct spk_pci_dev_state *st)
{
	if (!st)
		return;
	free(st->vec);
	free(st);
}

/* Only guest-writable (or guest-clearable) bits may differ from d's own. */
static int check_cfg(struct spk_pci_dev *d, struct spk_snap_reader *r, const uint8_t *cfg)
{
	int rc = 0;

	pthread_mutex_lock(&d->cfg_lock);
	for (unsigned o = 0; o < SPK_PCI_CFG_SIZE; o++) {
		uint8_t may = d->wmask[o] | d->w1c[o];

		if ((cfg[o] ^ d->cfg[o]) & ~may) {
			rc = spk_snap_bad(r, "pci.cfg",
			                  "byte 0x%03x is 0x%02x, this %s has 0x%02x there and the "
			                  "guest can change only bits 0x%02x",
			                  o, cfg[o], d->name, d->cfg[o], may);
			break;
		}
	}
	pthread_mutex_unlock(&d->cfg_lock);
	return rc;
}

static int read_msix(struct spk_pci_dev *d, struct spk_snap_reader *r, struct spk_pci_dev_state *st)
{
	const void *table, *pba;
	size_t tlen, plen;
	uint16_t want = d->has_msix ? d->msix.nvec : 0;
	int rc;

	if ((rc = spk_snap_get_u16(r, "pci.msix_vectors", &st->nvec)))
		return rc;
	if (st->nvec != want)
		return spk_snap_bad(r, "pci.msix_vectors", "%u, this %s has %u", st->nvec, d->name,
		                    want);
	if ((rc = spk_snap_get_blob(r, "pci.msix_table", &table, &tlen)) ||
	    (rc = spk_snap_get_blob(r, "pci.msix_pba", &pba, &plen)))
		return rc;
	if (tlen != (size_t)want * ENTRY)
		return spk_snap_bad(r, "pci.msix_table", "%zu bytes, not %u", tlen, want * ENTRY);
	if (plen != (want + 7u) / 8)
		return spk_snap_bad(r, "pci.msix_pba", "%zu bytes, not %u", plen, (want + 7u) / 8);
	st->vec = calloc(want + 1u, sizeof(*st->vec));
	if (!st->vec)
		return spk_fail(ENOMEM, "pci: %s: out of memory", d->name);
	for (unsigned i = 0; i < want; i++) {
		const uint8_t *e = (const uint8_t *)table + i * ENTRY;
		struct msix_vec *v = &st->vec[i];

		v->addr_lo = (uint32_t)spk_get_le(e, 4);
		v->addr_hi = (uint32_t)spk_get_le(e + 4, 4);
		v->data = (uint32_t)spk_get_le(e + 8, 4);
		v->ctrl = (uint32_t)spk_get_le(e + 12, 4);
		v->pending = ((const uint8_t *)pba)[i / 8] >> (i % 8) & 1;
		if (v->addr_lo & 3)
			return spk_snap_bad(r, "pci.msix_table",
			                    "vector %u: address 0x%08" PRIx32
			                    " has reserved bits 1:0",
			                    i, v->addr_lo);
		if (v->ctrl & ~(uint32_t)SPK_PCI_MSIX_CTRL_MASK)
			return spk_snap_bad(r, "pci.msix_table",
			                    "vector %u: control 0x%08" PRIx32
			                    " has bits beyond the mask",
			                    i, v->ctrl);
	}
	if (want % 8 && ((const uint8_t *)pba)[want / 8] >> (want % 8))
		return spk_snap_bad(r, "pci.msix_pba", "bits set past vector %u", want - 1);
	return 0;
}

int spk_pci_dev_state_read(struct spk_pci_dev *d, struct spk_snap_reader *r,
                           struct spk_pci_dev_state **out)
{
	struct spk_pci_dev_state *st;
	int rc;

	if (!d || !r || !out)
		return spk_fail(EINVAL,
		                "pci: state read needs a device, a reader and an out pointer");
	st = calloc(1, sizeof(*st));
	if (!st)
		return spk_fail(ENOMEM, "pci: %s: out of memory", d->name);
	if ((rc = spk_snap_get_u8(r, "pci.slot", &st->slot)))
		goto fail;
	if (st->slot != d->slot) {
		rc = spk_snap_bad(r, "pci.slot", "%u, this %s is in slot %u", st->slot, d->name,
		                  d->slot);
		goto fail;
	}
	if ((rc = spk_snap_get_bytes(r, "pci.cfg", st->cfg, sizeof(st->cfg))) ||
	    (rc = check_cfg(d, r, st->cfg)) || (rc = read_msix(d, r, st)))
		goto fail;
	*out = st;
	return 0;
fail:
	spk_pci_dev_state_free(st);
	return rc;
}

void spk_pci_dev_state_apply(struct spk_pci_dev *d, struct spk_pci_dev_state *st)
{
	if (!d || !st) {
		spk_fail(EINVAL, "pci: state apply needs a device and a state");
		spk_pci_dev_state_free(st);
		return;
	}
	pthread_mutex_lock(&d->cfg_lock);
	memcpy(d->cfg, st->cfg, sizeof(d->cfg));
	atomic_store(&d->command, (unsigned)spk_get_le(d->cfg + SPK_PCI_COMMAND, 2));
	spk_pci_intx_update(d);
	spk_pci_dev_update_bars(d);
	if (d->has_msix) {
		pthread_mutex_lock(&d->irq_lock);
		for (unsigned i = 0; i < st->nvec; i++) {
			struct msix_vec *v = &d->msix.vec[i];

			v->addr_lo = st->vec[i].addr_lo;
			v->addr_hi = st->vec[i].addr_hi;
			v->data = st->vec[i].data;
			v->ctrl = st->vec[i].ctrl;
			v->pending = st->vec[i].pending;
			v->stale = true; /* a route, if any, is redone at the next delivery */
		}
		pthread_mutex_unlock(&d->irq_lock);
		/* enable and mask-all from the message control word; sends what
		 * is pending and unmasked, as a guest's write of it would */
		spk_pci_msix_control(d, (uint16_t)spk_get_le(d->cfg + d->msix.cap + 2, 2));
	}
	pthread_mutex_unlock(&d->cfg_lock);
	spk_pci_dev_state_free(st);
}

/* ---- the host bridge ---- */

static int host_save(void *opaque, struct spk_snap_writer *w)
{
	struct spk_pci_host *h = opaque;

	spk_snap_put_u32(w, "cf8", spk_pci_host_cf8(h, NULL));
	return spk_pci_dev_state_save(spk_pci_host_bridge(h), w);
}

static int host_load(void *opaque, struct spk_snap_reader *r)
{
	struct spk_pci_host *h = opaque;
	struct spk_pci_dev_state *st = NULL;
	uint64_t cf8;
	int rc;

	if ((rc = spk_snap_get_mask(r, "cf8", SPK_PCI_CF8_KEPT, &cf8)) ||
	    (rc = spk_pci_dev_state_read(spk_pci_host_bridge(h), r, &st)) ||
	    (rc = spk_snap_reader_done(r))) {
		spk_pci_dev_state_free(st);
		return rc;
	}
	spk_pci_host_cf8(h, &(uint32_t){(uint32_t)cf8});
	spk_pci_dev_state_apply(spk_pci_host_bridge(h), st);
	return 0;
}

static const struct spk_dev_state_ops host_state = {"pci_host", 1, host_save, host_load};

const struct spk_dev_state_ops *spk_pci_host_state_ops(void)
{
	return &host_state;
}
