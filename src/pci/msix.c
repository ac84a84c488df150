/* SPDX-License-Identifier: Apache-2.0 */
/*
 * MSI-X: the vector table and pending bits in a BAR, delivery, and the
 * INTx pin. Everything here is under the device's irq_lock, a leaf lock:
 * nothing called with it held takes another PCI or device lock.
 *
 * With a VM, a vector is delivered through an irqfd on its own MSI route.
 * Routes are made when a vector first fires and remade when the guest has
 * changed its address or data since (Linux rewrites entries when it moves
 * an interrupt to another CPU), so table programming costs no ioctl and
 * an interrupt costs one eventfd write. If a route cannot be made the
 * message goes out through KVM_SIGNAL_MSI instead.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/internal.h"
#include "pci/pci_internal.h"

#define ENTRY_ADDR_LO 0
#define ENTRY_ADDR_HI 4
#define ENTRY_DATA    8
#define ENTRY_CTRL    12

int spk_pci_msix_init(struct spk_pci_dev *d, uint16_t nvec, unsigned bar, uint32_t table_off,
                      uint32_t pba_off)
{
	struct msix *m = &d->msix;
	uint64_t size = d->bars[bar < SPK_PCI_BARS ? bar : 0].size;
	uint64_t table_len = (uint64_t)nvec * SPK_PCI_MSIX_ENTRY, pba_len = ((nvec + 63u) / 64) * 8;

	if (nvec == 0 || nvec > SPK_PCI_MSIX_MAX)
		return spk_fail(EINVAL, "pci: %s: %u MSI-X vectors, need 1-%d", d->name, nvec,
		                SPK_PCI_MSIX_MAX);
	if (bar >= SPK_PCI_BARS || !size)
		return spk_fail(EINVAL, "pci: %s: MSI-X in BAR %u, which it does not have", d->name,
		                bar);
	if ((table_off | pba_off) & 7 || table_off + table_len > size || pba_off + pba_len > size)
		return spk_fail(EINVAL,
		                "pci: %s: MSI-X table 0x%x+0x%" PRIx64 " or PBA 0x%x+0x%" PRIx64
		                " is unaligned or outside BAR %u (0x%" PRIx64 " bytes)",
		                d->name, table_off, table_len, pba_off, pba_len, bar, size);
	if (table_off < pba_off + pba_len && pba_off < table_off + table_len)
		return spk_fail(EINVAL, "pci: %s: MSI-X table and PBA overlap", d->name);
	m->vec = calloc(nvec, sizeof(*m->vec));
	if (!m->vec)
		return spk_fail(ENOMEM, "pci: %s: out of memory for %u MSI-X vectors", d->name,
		                nvec);
	/* the irqfds' eventfds now: delivery then needs only KVM ioctls and a
	 * write (a vCPU thread may deliver, under a tight seccomp filter) */
	for (unsigned i = 0; i < nvec; i++)
		m->vec[i] = (struct msix_vec){.ctrl = SPK_PCI_MSIX_CTRL_MASK,
		                              .gsi = -1,
		                              .fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
	m->nvec = nvec;
	m->bar = bar;
	m->table_off = table_off;
	m->pba_off = pba_off;
	return 0;
}

void spk_pci_msix_fini(struct spk_pci_dev *d)
{
	struct msix *m = &d->msix;
	struct spk_vm *vm = spk_pci_dev_vm(d);

	for (unsigned i = 0; m->vec && i < m->nvec; i++) {
		struct msix_vec *v = &m->vec[i];

		if (v->fd >= 0) {
			if (vm && v->gsi >= 0 && v->irqfd)
				spk_vm_irqfd_del(vm, (uint32_t)v->gsi, v->fd);
			close(v->fd);
		}
		if (vm && v->gsi >= 0)
			spk_vm_msi_route_del(vm, (uint32_t)v->gsi);
	}
	free(m->vec);
	m->vec = NULL;
	m->nvec = 0;
}

static uint64_t table_len(const struct msix *m)
{
	return (uint64_t)m->nvec * SPK_PCI_MSIX_ENTRY;
}

static uint64_t pba_len(const struct msix *m)
{
	return ((m->nvec + 63u) / 64) * 8;
}

bool spk_pci_msix_owns(struct spk_pci_dev *d, unsigned bar, uint64_t off)
{
	const struct msix *m = &d->msix;

	if (bar != m->bar)
		return false;
	return (off >= m->table_off && off - m->table_off < table_len(m)) ||
	       (off >= m->pba_off && off - m->pba_off < pba_len(m));
}

/* ---- delivery ------------------------------------------------------------------ */

static bool addr_ok(const struct msix_vec *v)
{
	return v->addr_hi == 0 && (v->addr_lo & 0xfff00000u) == 0xfee00000u;
}

/* Make or refresh the vector's route and irqfd; false if it cannot be had. */
static bool ensure_route(struct spk_pci_dev *d, struct spk_vm *vm, struct msix_vec *v,
                         const struct spk_msi *msi)
{
	uint32_t gsi;

	if (v->gsi < 0) {
		if (spk_vm_msi_route_add(vm, msi, &gsi) < 0)
			return false;
		v->gsi = (int)gsi;
		v->stale = false;
	} else if (v->stale) {
		if (spk_vm_msi_route_set(vm, (uint32_t)v->gsi, msi) < 0)
			return false;
		v->stale = false;
	}
	if (!v->irqfd) {
		if (v->fd < 0 || spk_vm_irqfd_add(vm, (uint32_t)v->gsi, v->fd) < 0)
			return false;
		v->irqfd = true;
	}
	return true;
}

static void deliver(struct spk_pci_dev *d, unsigned i)
{
	struct msix_vec *v = &d->msix.vec[i];
	const struct spk_msi msi = {.addr = (uint64_t)v->addr_hi << 32 | v->addr_lo,
	                            .data = v->data};
	struct spk_vm *vm = spk_pci_dev_vm(d);
	uint64_t one = 1;

	if (!addr_ok(v)) {
		if (!d->msix.warned_addr)
			spk_log(SPK_LOG_WARN,
			        "pci: %s: MSI-X vector %u has address 0x%" PRIx64
			        " outside the LAPIC range; interrupt dropped (logged once)",
			        d->name, i, msi.addr);
		d->msix.warned_addr = true;
		return;
	}
	if (!vm) {
		spk_pci_host_msi(d->host, &msi);
		return;
	}
	if (ensure_route(d, vm, v, &msi)) {
		if (write(v->fd, &one, sizeof(one)) == sizeof(one))
			return;
	}
	if (spk_vm_signal_msi(vm, &msi) < 0)
		spk_log(SPK_LOG_WARN, "pci: %s: MSI-X vector %u: %s", d->name, i, spk_last_error());
}

static bool vec_masked(const struct msix *m, unsigned i)
{
	return m->masked || (m->vec[i].ctrl & SPK_PCI_MSIX_CTRL_MASK);
}

/* Send what was held back and may go now. */
static void flush_pending(struct spk_pci_dev *d)
{
	struct msix *m = &d->msix;

	if (!m->enabled || m->masked)
		return;
	for (unsigned i = 0; i < m->nvec; i++) {
		if (m->vec[i].pending && !vec_masked(m, i)) {
			m->vec[i].pending = false;
			deliver(d, i);
		}
	}
}

bool spk_pci_msix_enabled(struct spk_pci_dev *d)
{
	if (!d || !d->has_msix)
		return false;
	pthread_mutex_lock(&d->irq_lock);
	bool on = d->msix.enabled;
	pthread_mutex_unlock(&d->irq_lock);
	return on;
}

int spk_pci_msix_signal(struct spk_pci_dev *d, uint16_t vector)
{
	struct msix *m = &d->msix;
	int rc = 0;

	if (!d->has_msix)
		return -ENOTCONN;
	pthread_mutex_lock(&d->irq_lock);
	if (vector >= m->nvec)
		rc = -EINVAL;
	else if (!m->enabled)
		rc = -ENOTCONN;
	else if (vec_masked(m, vector))
		m->vec[vector].pending = true;
	else
		deliver(d, vector);
	pthread_mutex_unlock(&d->irq_lock);
	return rc;
}

/* ---- the table and the PBA ---------------------------------------------------------- */

static uint32_t entry_read(const struct msix_vec *v, unsigned field)
{
	switch (field) {
	case ENTRY_ADDR_LO:
		return v->addr_lo;
	case ENTRY_ADDR_HI:
		return v->addr_hi;
	case ENTRY_DATA:
		return v->data;
	default:
		return v->ctrl;
	}
}

static void entry_write(struct spk_pci_dev *d, unsigned i, unsigned field, uint32_t value)
{
	struct msix_vec *v = &d->msix.vec[i];

	switch (field) {
	case ENTRY_ADDR_LO:
		v->stale |= v->addr_lo != value;
		v->addr_lo = value & ~3u; /* bits 1:0 are reserved */
		break;
	case ENTRY_ADDR_HI:
		v->stale |= v->addr_hi != value;
		v->addr_hi = value;
		break;
	case ENTRY_DATA:
		v->stale |= v->data != value;
		v->data = value;
		break;
	default:
		v->ctrl = value & SPK_PCI_MSIX_CTRL_MASK;
		flush_pending(d);
		break;
	}
}

static uint64_t pba_read(const struct msix *m, uint64_t off, unsigned width)
{
	uint64_t v = 0;

	/* bit n of byte b: vector 8 * b + n */
	for (unsigned byte = 0; byte < width; byte++)
		for (unsigned bit = 0; bit < 8; bit++) {
			uint64_t i = (off + byte) * 8 + bit;

			if (i < m->nvec && m->vec[i].pending)
				v |= 1ull << (8 * byte + bit);
		}
	return v;
}

/* A dword or qword access, naturally aligned; the rest is ignored. */
static bool access_ok(uint64_t off, unsigned width)
{
	return (width == 4 || width == 8) && off % width == 0;
}

uint64_t spk_pci_msix_bar_read(struct spk_pci_dev *d, uint64_t off, unsigned width)
{
	struct msix *m = &d->msix;
	uint64_t v = 0;

	if (!access_ok(off, width))
		return ~0ull;
	pthread_mutex_lock(&d->irq_lock);
	if (off >= m->pba_off && off - m->pba_off < pba_len(m)) {
		v = pba_read(m, off - m->pba_off, width);
	} else {
		uint64_t t = off - m->table_off;
		const struct msix_vec *e = &m->vec[t / SPK_PCI_MSIX_ENTRY];
		unsigned field = (unsigned)(t % SPK_PCI_MSIX_ENTRY);

		v = entry_read(e, field);
		if (width == 8)
			v |= (uint64_t)entry_read(e, field + 4) << 32;
	}
	pthread_mutex_unlock(&d->irq_lock);
	return v;
}

void spk_pci_msix_bar_write(struct spk_pci_dev *d, uint64_t off, unsigned width, uint64_t value)
{
	struct msix *m = &d->msix;

	if (!access_ok(off, width) || off < m->table_off || off - m->table_off >= table_len(m))
		return; /* the PBA is read-only */
	pthread_mutex_lock(&d->irq_lock);
	uint64_t t = off - m->table_off;
	unsigned i = (unsigned)(t / SPK_PCI_MSIX_ENTRY), field = (unsigned)(t % SPK_PCI_MSIX_ENTRY);

	entry_write(d, i, field, (uint32_t)value);
	if (width == 8)
		entry_write(d, i, field + 4, (uint32_t)(value >> 32));
	pthread_mutex_unlock(&d->irq_lock);
}

/* ---- message control and INTx ------------------------------------------------------- */

static void intx_sync(struct spk_pci_dev *d)
{
	bool out = d->intx_want && d->irq_pin && !d->msix.enabled &&
	           !(atomic_load(&d->command) & SPK_PCI_CMD_INTX_OFF);

	if (out == d->intx_out || !d->host)
		return;
	d->intx_out = out;
	spk_pci_host_intx(d->host, d->slot, d->irq_pin, out);
}

void spk_pci_msix_control(struct spk_pci_dev *d, uint16_t ctrl)
{
	pthread_mutex_lock(&d->irq_lock);
	d->msix.enabled = ctrl & SPK_PCI_MSIX_ENABLE;
	d->msix.masked = ctrl & SPK_PCI_MSIX_MASKALL;
	flush_pending(d);
	intx_sync(d);
	pthread_mutex_unlock(&d->irq_lock);
}

void spk_pci_intx_update(struct spk_pci_dev *d)
{
	pthread_mutex_lock(&d->irq_lock);
	intx_sync(d);
	pthread_mutex_unlock(&d->irq_lock);
}

void spk_pci_intx(struct spk_pci_dev *d, bool level)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->irq_lock);
	__atomic_store_n(&d->intx_want, level, __ATOMIC_RELAXED);
	intx_sync(d);
	pthread_mutex_unlock(&d->irq_lock);
}
