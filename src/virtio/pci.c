/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The virtio 1.x modern PCI transport (virtio 1.2 section 4.1): one 64-bit
 * memory BAR holds every structure the capabilities point at,
 *
 *	0x0000 common configuration     0x3000 notifications, 4 bytes per queue
 *	0x1000 ISR status               0x4000 MSI-X table (the PCI layer's)
 *	0x2000 device configuration     0x6000 MSI-X pending bits
 *
 * plus a VIRTIO_PCI_CAP_PCI_CFG window in config space. Notifications are
 * eventfds: KVM signals them itself (an ioeventfd at each queue's notify
 * address, re-registered when the guest moves the BAR) and a notify write
 * that does exit is turned into the same eventfd write, so queue work
 * always runs on the event loop. Interrupts: MSI-X when the driver enabled
 * it (irqfd), else INTx with the ISR register.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <sparkler/snapshot.h>
#include <sparkler/virtio.h>

#include "core/internal.h"
#include "devices/devlog.h"

#define VIRTIO_VENDOR   0x1af4
#define VIRTIO_DEVICE_0 0x1040 /* modern devices: 0x1040 + device type */
#define VIRTIO_REVISION 1
#define CLASS_OTHER     0xff0000

#define BAR            0
#define BAR_SIZE       0x8000
#define COMMON_OFF     0x0000
#define COMMON_LEN     0x40
#define ISR_OFF        0x1000
#define DEVCFG_OFF     0x2000
#define DEVCFG_MAX     0x1000
#define NOTIFY_OFF     0x3000
#define NOTIFY_MULT    4
#define MSIX_TABLE_OFF 0x4000
#define MSIX_PBA_OFF   0x6000
#define MAX_QUEUES     256

#define CAP_COMMON  1
#define CAP_NOTIFY  2
#define CAP_ISR     3
#define CAP_DEVICE  4
#define CAP_PCI_CFG 5

#define ISR_QUEUE  1
#define ISR_CONFIG 2

#define TRANSPORT_FEATURES                                                                         \
	(SPK_VIRTIO_F_BIT(SPK_VIRTIO_F_VERSION_1) | SPK_VIRTIO_F_BIT(SPK_VIRTIO_F_EVENT_IDX) |     \
	 SPK_VIRTIO_F_BIT(SPK_VIRTIO_F_INDIRECT_DESC))

/* Common configuration fields (struct virtio_pci_common_cfg). */
enum {
	CC_DFSELECT = 0x00,
	CC_DF = 0x04,
	CC_GFSELECT = 0x08,
	CC_GF = 0x0c,
	CC_MSIX_CONFIG = 0x10,
	CC_NUM_QUEUES = 0x12,
	CC_STATUS = 0x14,
	CC_GENERATION = 0x15,
	CC_Q_SELECT = 0x16,
	CC_Q_SIZE = 0x18,
	CC_Q_MSIX = 0x1a,
	CC_Q_ENABLE = 0x1c,
	CC_Q_NOTIFY_OFF = 0x1e,
	CC_Q_DESC = 0x20,
	CC_Q_DRIVER = 0x28,
	CC_Q_DEVICE = 0x30,
	CC_Q_NOTIFY_DATA = 0x38,
	CC_Q_RESET = 0x3a,
	CC_END = 0x3c,
};

static const struct {
	uint8_t off, size;
} fields[] = {
    {CC_DFSELECT, 4},      {CC_DF, 4},         {CC_GFSELECT, 4}, {CC_GF, 4},
    {CC_MSIX_CONFIG, 2},   {CC_NUM_QUEUES, 2}, {CC_STATUS, 1},   {CC_GENERATION, 1},
    {CC_Q_SELECT, 2},      {CC_Q_SIZE, 2},     {CC_Q_MSIX, 2},   {CC_Q_ENABLE, 2},
    {CC_Q_NOTIFY_OFF, 2},  {CC_Q_DESC, 8},     {CC_Q_DRIVER, 8}, {CC_Q_DEVICE, 8},
    {CC_Q_NOTIFY_DATA, 2}, {CC_Q_RESET, 2},
};

struct kick {
	struct spk_virtio *vd;
	unsigned q;
	int fd;
};

struct spk_virtio {
	pthread_mutex_t lock;
	struct spk_virtio_config cfg; /* ops, opaque, loop, mem */
	struct spk_virtio_ops ops;
	struct spk_pci_dev *pdev;
	struct spk_virtq *q;
	struct kick *kicks;
	uint16_t nq;

	uint64_t dev_features, drv_features;
	uint32_t dfselect, gfselect;
	uint16_t config_vector, qsel;
	uint8_t status, isr, generation;
	uint64_t notify_base; /* where the ioeventfds are, 0: none */
	uint8_t pcicfg_cap;   /* config offset of the VIRTIO_PCI_CAP_PCI_CFG window */
	struct spk_dev_ratelimit rl;
	struct spk_dev_state_ops state_ops; /* the device's kind and version, our save/load */
};

const char *spk_virtio_name(const struct spk_virtio *vd)
{
	return spk_pci_dev_name(vd->pdev);
}

void spk_virtio_lock(struct spk_virtio *vd)
{
	pthread_mutex_lock(&vd->lock);
}

void spk_virtio_unlock(struct spk_virtio *vd)
{
	pthread_mutex_unlock(&vd->lock);
}

const struct spk_mem *spk_virtio_mem(const struct spk_virtio *vd)
{
	return vd->cfg.mem;
}

struct spk_pci_dev *spk_virtio_pci(struct spk_virtio *vd)
{
	return vd->pdev;
}

uint64_t spk_virtio_features(const struct spk_virtio *vd)
{
	return vd->drv_features;
}

uint8_t spk_virtio_status(struct spk_virtio *vd)
{
	if (!vd) {
		spk_fail(EINVAL, "virtio: status needs a device");
		return 0;
	}
	spk_virtio_lock(vd);
	uint8_t s = vd->status;
	spk_virtio_unlock(vd);
	return s;
}

bool spk_virtio_running(const struct spk_virtio *vd)
{
	return (vd->status & (SPK_VIRTIO_S_DRIVER_OK | SPK_VIRTIO_S_NEEDS_RESET)) ==
	       SPK_VIRTIO_S_DRIVER_OK;
}

bool spk_virtio_queue_ready(const struct spk_virtio *vd, unsigned q)
{
	return q < vd->nq && vd->q[q].enabled && !vd->q[q].broken;
}

/* ---- interrupts ------------------------------------------------------------------------- */

static void irq_raise(struct spk_virtio *vd, uint16_t vector, uint8_t isr_bit)
{
	if (spk_pci_msix_enabled(vd->pdev)) {
		if (vector == SPK_VIRTIO_NO_VECTOR)
			return;
		if (spk_pci_msix_signal(vd->pdev, vector) != -ENOTCONN)
			return; /* sent, or pending under a mask */
	}
	vd->isr |= isr_bit;
	spk_pci_intx(vd->pdev, true);
}

void spk_virtio_interrupt(struct spk_virtio *vd, unsigned q)
{
	if (q < vd->nq && spk_virtq_need_interrupt(&vd->q[q]))
		irq_raise(vd, vd->q[q].msix_vector, ISR_QUEUE);
}

static void config_interrupt(struct spk_virtio *vd)
{
	irq_raise(vd, vd->config_vector, ISR_CONFIG);
}

void spk_virtio_config_changed(struct spk_virtio *vd)
{
	vd->generation++;
	config_interrupt(vd);
}

/* The guest broke a rule: one line, NEEDS_RESET, a config interrupt. */
static void needs_reset(struct spk_virtio *vd, int q, const char *why)
{
	if (vd->status & SPK_VIRTIO_S_NEEDS_RESET)
		return; /* said once already; nothing runs until the reset */
	if (q >= 0)
		spk_dev_log(&vd->rl, spk_virtio_name(vd), SPK_LOG_WARN,
		            "%s: queue %d: %s; device needs reset", spk_virtio_name(vd), q, why);
	else
		spk_dev_log(&vd->rl, spk_virtio_name(vd), SPK_LOG_WARN,
		            "%s: %s; device needs reset", spk_virtio_name(vd), why);
	vd->status |= SPK_VIRTIO_S_NEEDS_RESET;
	if (vd->status & SPK_VIRTIO_S_DRIVER_OK)
		config_interrupt(vd);
}

void spk_virtio_fail(struct spk_virtio *vd, unsigned q, const char *fmt, ...)
{
	char why[192];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	needs_reset(vd, (int)q, why);
}

/* ---- queues ------------------------------------------------------------------------------ */

int spk_virtio_pop(struct spk_virtio *vd, unsigned q, struct spk_virtq_chain *c)
{
	int rc;

	if (!spk_virtio_running(vd) || !spk_virtio_queue_ready(vd, q))
		return 0;
	rc = spk_virtq_pop(&vd->q[q], c);
	if (rc == -EIO)
		needs_reset(vd, (int)q, vd->q[q].err);
	return rc;
}

int spk_virtio_push(struct spk_virtio *vd, unsigned q, const struct spk_virtq_chain *c,
                    uint32_t len)
{
	if (q >= vd->nq || !vd->q[q].enabled)
		return spk_fail(EINVAL, "%s: push to queue %u, which is not enabled",
		                spk_virtio_name(vd), q);
	return spk_virtq_push(&vd->q[q], c, len);
}

int spk_virtio_unpop(struct spk_virtio *vd, unsigned q, const struct spk_virtq_chain *c)
{
	if (q >= vd->nq || !c)
		return spk_fail(EINVAL, "%s: unpop on queue %u", spk_virtio_name(vd), q);
	return spk_virtq_unpop(&vd->q[q], c->head);
}

/* Run the device on queue q if it may run; under the lock. */
static void notify_locked(struct spk_virtio *vd, unsigned q)
{
	if (!spk_virtio_running(vd) || !spk_virtio_queue_ready(vd, q) || !vd->ops.queue_notify)
		return;
	if (!(spk_pci_dev_command(vd->pdev) & SPK_PCI_CMD_MASTER)) {
		spk_dev_log(&vd->rl, spk_virtio_name(vd), SPK_LOG_WARN,
		            "%s: queue %u notified with bus mastering off; ignored",
		            spk_virtio_name(vd), q);
		return;
	}
	vd->ops.queue_notify(vd->cfg.opaque, vd, q);
}

static void on_kick(void *opaque, int fd, uint32_t events)
{
	struct kick *k = opaque;
	uint64_t n;

	if (read(fd, &n, sizeof(n)) < 0) {
		/* EAGAIN: nothing new; still look at the queue */
	}
	spk_virtio_lock(k->vd);
	notify_locked(k->vd, k->q);
	spk_virtio_unlock(k->vd);
}

/* A notification from the guest (no lock held). */
static void guest_kick(struct spk_virtio *vd, unsigned q)
{
	uint64_t one = 1;

	if (q >= vd->nq)
		return;
	if (!vd->cfg.loop) {
		on_kick(&vd->kicks[q], vd->kicks[q].fd, 0);
		return;
	}
	if (write(vd->kicks[q].fd, &one, sizeof(one)) < 0) {
		/* the counter is saturated: a wakeup is pending anyway */
	}
}

void spk_virtio_kick(struct spk_virtio *vd, unsigned q)
{
	uint64_t one = 1;

	if (q >= vd->nq)
		return;
	if (!vd->cfg.loop) {
		notify_locked(vd, q); /* the caller holds the lock */
		return;
	}
	if (write(vd->kicks[q].fd, &one, sizeof(one)) < 0) {
		/* saturated: pending anyway */
	}
}

static void reset_device(struct spk_virtio *vd)
{
	vd->status = 0;
	vd->drv_features = 0;
	vd->dfselect = vd->gfselect = 0;
	vd->qsel = 0;
	vd->config_vector = SPK_VIRTIO_NO_VECTOR;
	vd->isr = 0;
	spk_pci_intx(vd->pdev, false);
	for (unsigned i = 0; i < vd->nq; i++)
		spk_virtq_reset(&vd->q[i]);
	if (vd->ops.reset)
		vd->ops.reset(vd->cfg.opaque, vd);
}

static void enable_queue(struct spk_virtio *vd, struct spk_virtq *q)
{
	bool ev = vd->drv_features & SPK_VIRTIO_F_BIT(SPK_VIRTIO_F_EVENT_IDX);
	bool ind = vd->drv_features & SPK_VIRTIO_F_BIT(SPK_VIRTIO_F_INDIRECT_DESC);

	if (q->enabled)
		return;
	if (spk_virtq_start(q, vd->cfg.mem, ev, ind) < 0) {
		needs_reset(vd, q->index, q->err);
		return;
	}
	q->enabled = true;
	if (spk_virtio_running(vd))
		spk_virtio_kick(vd, q->index);
}

/* ---- device status ------------------------------------------------------------------------ */

static bool features_ok(struct spk_virtio *vd)
{
	uint64_t extra = vd->drv_features & ~vd->dev_features;

	if (!(vd->drv_features & SPK_VIRTIO_F_BIT(SPK_VIRTIO_F_VERSION_1))) {
		spk_dev_log(&vd->rl, spk_virtio_name(vd), SPK_LOG_WARN,
		            "%s: the driver did not accept VERSION_1 (features 0x%" PRIx64
		            "); FEATURES_OK refused",
		            spk_virtio_name(vd), vd->drv_features);
		return false;
	}
	if (extra) {
		spk_dev_log(&vd->rl, spk_virtio_name(vd), SPK_LOG_WARN,
		            "%s: the driver accepted features 0x%" PRIx64 " that were not "
		            "offered; FEATURES_OK refused",
		            spk_virtio_name(vd), extra);
		return false;
	}
	return true;
}

static void activate(struct spk_virtio *vd)
{
	int rc = vd->ops.activate ? vd->ops.activate(vd->cfg.opaque, vd, vd->drv_features) : 0;

	if (rc) {
		needs_reset(vd, -1, "the device could not start");
		return;
	}
	for (unsigned i = 0; i < vd->nq; i++)
		if (vd->q[i].enabled)
			spk_virtio_kick(vd, i); /* work posted before DRIVER_OK */
}

static void set_status(struct spk_virtio *vd, uint8_t v)
{
	uint8_t old = vd->status & ~SPK_VIRTIO_S_NEEDS_RESET, added;

	if (v == 0) {
		reset_device(vd);
		return;
	}
	v &= (uint8_t)~SPK_VIRTIO_S_NEEDS_RESET; /* the device's bit */
	if (old & ~v) {
		spk_dev_log(&vd->rl, spk_virtio_name(vd), SPK_LOG_WARN,
		            "%s: the driver cleared status bits 0x%x without a reset; ignored",
		            spk_virtio_name(vd), old & ~v);
		return;
	}
	added = v & ~old;
	if ((added & SPK_VIRTIO_S_FEATURES_OK) && !features_ok(vd))
		v &= (uint8_t)~SPK_VIRTIO_S_FEATURES_OK;
	if ((added & SPK_VIRTIO_S_DRIVER_OK) && !(v & SPK_VIRTIO_S_FEATURES_OK)) {
		spk_dev_log(&vd->rl, spk_virtio_name(vd), SPK_LOG_WARN,
		            "%s: DRIVER_OK without FEATURES_OK; refused", spk_virtio_name(vd));
		v &= (uint8_t)~SPK_VIRTIO_S_DRIVER_OK;
	}
	vd->status = v | (vd->status & SPK_VIRTIO_S_NEEDS_RESET);
	if ((v & ~old) & SPK_VIRTIO_S_DRIVER_OK)
		activate(vd);
}

/* ---- common configuration ------------------------------------------------------------------ */

static struct spk_virtq *selected(struct spk_virtio *vd)
{
	return vd->qsel < vd->nq ? &vd->q[vd->qsel] : NULL;
}

static uint64_t common_get(struct spk_virtio *vd, unsigned off)
{
	struct spk_virtq *q = selected(vd);

	switch (off) {
	case CC_DFSELECT:
		return vd->dfselect;
	case CC_DF:
		return vd->dfselect < 2 ? (uint32_t)(vd->dev_features >> (32 * vd->dfselect)) : 0;
	case CC_GFSELECT:
		return vd->gfselect;
	case CC_GF:
		return vd->gfselect < 2 ? (uint32_t)(vd->drv_features >> (32 * vd->gfselect)) : 0;
	case CC_MSIX_CONFIG:
		return vd->config_vector;
	case CC_NUM_QUEUES:
		return vd->nq;
	case CC_STATUS:
		return vd->status;
	case CC_GENERATION:
		return vd->generation;
	case CC_Q_SELECT:
		return vd->qsel;
	}
	if (!q)
		return 0; /* queue_size 0: no such queue */
	switch (off) {
	case CC_Q_SIZE:
		return q->size;
	case CC_Q_MSIX:
		return q->msix_vector;
	case CC_Q_ENABLE:
		return q->enabled;
	case CC_Q_NOTIFY_OFF:
		return q->index;
	case CC_Q_DESC:
		return q->desc;
	case CC_Q_DRIVER:
		return q->avail;
	case CC_Q_DEVICE:
		return q->used;
	default:
		return 0;
	}
}

/* A vector the table has, or NO_VECTOR (the driver reads back and sees). */
static uint16_t vector_or_none(const struct spk_virtio *vd, uint64_t v)
{
	return v < (uint64_t)vd->nq + 1 ? (uint16_t)v : SPK_VIRTIO_NO_VECTOR;
}

static void driver_features(struct spk_virtio *vd, uint64_t v)
{
	unsigned shift = 32 * vd->gfselect;

	if (vd->gfselect >= 2 || (vd->status & SPK_VIRTIO_S_FEATURES_OK))
		return; /* fixed once FEATURES_OK is set */
	vd->drv_features &= ~(0xffffffffull << shift);
	vd->drv_features |= (v & 0xffffffffull) << shift;
}

static void queue_set(struct spk_virtio *vd, unsigned off, uint64_t v)
{
	struct spk_virtq *q = selected(vd);

	if (!q)
		return;
	if (off == CC_Q_MSIX) {
		q->msix_vector = vector_or_none(vd, v);
		return;
	}
	if (off == CC_Q_ENABLE) {
		if (v == 1)
			enable_queue(vd, q);
		return; /* 0 is not how a queue is stopped: a reset is */
	}
	if (q->enabled)
		return; /* the driver must not change an enabled queue */
	switch (off) {
	case CC_Q_SIZE:
		q->size = (uint16_t)v; /* checked when enabled */
		break;
	case CC_Q_DESC:
		q->desc = v;
		break;
	case CC_Q_DRIVER:
		q->avail = v;
		break;
	case CC_Q_DEVICE:
		q->used = v;
		break;
	}
}

static void common_set(struct spk_virtio *vd, unsigned off, uint64_t v)
{
	switch (off) {
	case CC_DFSELECT:
		vd->dfselect = (uint32_t)v;
		break;
	case CC_GFSELECT:
		vd->gfselect = (uint32_t)v;
		break;
	case CC_GF:
		driver_features(vd, v);
		break;
	case CC_MSIX_CONFIG:
		vd->config_vector = vector_or_none(vd, v);
		break;
	case CC_STATUS:
		set_status(vd, (uint8_t)v);
		break;
	case CC_Q_SELECT:
		vd->qsel = (uint16_t)v;
		break;
	default:
		queue_set(vd, off, v); /* read-only fields fall through to nothing */
		break;
	}
}

/* Byte-wise: any width at any offset reads and writes the fields it covers. */
static uint64_t common_read(struct spk_virtio *vd, uint64_t off, unsigned width)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < SPK_ARRAY_SIZE(fields); i++) {
		uint64_t fo = fields[i].off, fs = fields[i].size;

		if (fo + fs <= off || fo >= off + width)
			continue;
		uint64_t fv = common_get(vd, (unsigned)fo);
		for (uint64_t b = 0; b < fs; b++)
			if (fo + b >= off && fo + b < off + width)
				v |= ((fv >> (8 * b)) & 0xff) << (8 * (fo + b - off));
	}
	return v;
}

static void common_write(struct spk_virtio *vd, uint64_t off, unsigned width, uint64_t value)
{
	for (unsigned i = 0; i < SPK_ARRAY_SIZE(fields); i++) {
		uint64_t fo = fields[i].off, fs = fields[i].size;
		uint8_t bytes[8];

		if (fo + fs <= off || fo >= off + width)
			continue;
		spk_put_le(bytes, common_get(vd, (unsigned)fo), (unsigned)fs);
		for (uint64_t b = 0; b < fs; b++)
			if (fo + b >= off && fo + b < off + width)
				bytes[b] = (uint8_t)(value >> (8 * (fo + b - off)));
		common_set(vd, (unsigned)fo, spk_get_le(bytes, (unsigned)fs));
	}
}

/* ---- the BAR ----------------------------------------------------------------------------------
 */

static uint64_t devcfg_read(struct spk_virtio *vd, uint64_t off, unsigned width)
{
	uint8_t buf[8] = {0};

	if (off >= vd->cfg.config_size || !vd->ops.config_read)
		return 0;
	uint32_t n =
	    (uint32_t)(width < vd->cfg.config_size - off ? width : vd->cfg.config_size - off);
	vd->ops.config_read(vd->cfg.opaque, (uint32_t)off, buf, n);
	return spk_get_le(buf, width);
}

static void devcfg_write(struct spk_virtio *vd, uint64_t off, unsigned width, uint64_t value)
{
	uint8_t buf[8];

	if (off >= vd->cfg.config_size || !vd->ops.config_write)
		return;
	uint32_t n =
	    (uint32_t)(width < vd->cfg.config_size - off ? width : vd->cfg.config_size - off);
	spk_put_le(buf, value, width);
	vd->ops.config_write(vd->cfg.opaque, (uint32_t)off, buf, n);
}

static uint64_t bar_read_locked(struct spk_virtio *vd, uint64_t off, unsigned width)
{
	if (off < COMMON_LEN && width <= COMMON_LEN - off)
		return common_read(vd, off, width);
	if (off == ISR_OFF) {
		uint8_t isr = vd->isr;

		vd->isr = 0;
		spk_pci_intx(vd->pdev, false);
		return isr;
	}
	if (off >= DEVCFG_OFF && off < DEVCFG_OFF + DEVCFG_MAX)
		return devcfg_read(vd, off - DEVCFG_OFF, width);
	return 0;
}

static uint64_t bar_read(void *opaque, unsigned bar, uint64_t off, unsigned width)
{
	struct spk_virtio *vd = opaque;

	spk_virtio_lock(vd);
	uint64_t v = bar_read_locked(vd, off, width);
	spk_virtio_unlock(vd);
	return v;
}

static void bar_write(void *opaque, unsigned bar, uint64_t off, unsigned width, uint64_t value)
{
	struct spk_virtio *vd = opaque;

	if (off >= NOTIFY_OFF && off < NOTIFY_OFF + (uint64_t)NOTIFY_MULT * vd->nq) {
		guest_kick(vd, (unsigned)((off - NOTIFY_OFF) / NOTIFY_MULT));
		return;
	}
	spk_virtio_lock(vd);
	if (off < COMMON_LEN && width <= COMMON_LEN - off)
		common_write(vd, off, width, value);
	else if (off >= DEVCFG_OFF && off < DEVCFG_OFF + DEVCFG_MAX)
		devcfg_write(vd, off - DEVCFG_OFF, width, value);
	spk_virtio_unlock(vd);
}

/* ---- ioeventfds follow the BAR ------------------------------------------------------------------
 */

static struct spk_ioeventfd notify_ioeventfd(struct spk_virtio *vd, uint64_t base, unsigned q)
{
	return (struct spk_ioeventfd){.space = SPK_BUS_MMIO,
	                              .addr = base + NOTIFY_OFF + (uint64_t)NOTIFY_MULT * q,
	                              .len = 2,
	                              .fd = vd->kicks[q].fd};
}

static void ioeventfds(struct spk_virtio *vd, uint64_t base, bool add)
{
	struct spk_vm *vm = spk_pci_dev_vm(vd->pdev);

	if (!vm || !vd->cfg.loop || !base)
		return;
	for (unsigned q = 0; q < vd->nq; q++) {
		struct spk_ioeventfd io = notify_ioeventfd(vd, base, q);
		int rc = add ? spk_vm_ioeventfd_add(vm, &io) : spk_vm_ioeventfd_del(vm, &io);

		if (rc < 0)
			spk_dev_log(&vd->rl, spk_virtio_name(vd), SPK_LOG_WARN,
			            "%s: queue %u notifications will exit: %s", spk_virtio_name(vd),
			            q, spk_last_error());
	}
}

static void bar_moved(void *opaque, unsigned bar, uint64_t addr)
{
	struct spk_virtio *vd = opaque;

	spk_virtio_lock(vd);
	ioeventfds(vd, vd->notify_base, false);
	vd->notify_base = addr;
	ioeventfds(vd, addr, true);
	spk_virtio_unlock(vd);
}

/* ---- the PCI configuration access window (VIRTIO_PCI_CAP_PCI_CFG)
 * -------------------------------- */

struct pcicfg_req {
	uint8_t bar;
	uint32_t off, len;
};

static bool pcicfg_req(struct spk_virtio *vd, struct pcicfg_req *r)
{
	uint8_t cap[20];

	spk_pci_cfg_get(vd->pdev, vd->pcicfg_cap, cap, sizeof(cap));
	r->bar = cap[4];
	r->off = (uint32_t)spk_get_le(cap + 8, 4);
	r->len = (uint32_t)spk_get_le(cap + 12, 4);
	return r->bar == BAR && (r->len == 1 || r->len == 2 || r->len == 4) &&
	       r->off % r->len == 0 && r->off < BAR_SIZE && r->len <= BAR_SIZE - r->off;
}

static bool in_pcicfg_data(const struct spk_virtio *vd, uint32_t off, unsigned width)
{
	uint32_t data = vd->pcicfg_cap + 16u;

	return off < data + 4 && data < off + width;
}

static void pcicfg_reading(void *opaque, uint32_t off, unsigned width)
{
	struct spk_virtio *vd = opaque;
	struct pcicfg_req r;
	uint8_t data[4] = {0};

	if (!in_pcicfg_data(vd, off, width) || !pcicfg_req(vd, &r))
		return;
	spk_put_le(data, bar_read(vd, BAR, r.off, r.len), r.len);
	spk_pci_cfg_set(vd->pdev, vd->pcicfg_cap + 16u, data, sizeof(data));
}

static void pcicfg_written(void *opaque, uint32_t off, unsigned width)
{
	struct spk_virtio *vd = opaque;
	struct pcicfg_req r;
	uint8_t data[4];

	if (!in_pcicfg_data(vd, off, width) || !pcicfg_req(vd, &r))
		return;
	spk_pci_cfg_get(vd->pdev, vd->pcicfg_cap + 16u, data, sizeof(data));
	bar_write(vd, BAR, r.off, r.len, spk_get_le(data, r.len));
}

static const struct spk_pci_dev_ops pci_ops = {
    .bar_read = bar_read,
    .bar_write = bar_write,
    .bar_moved = bar_moved,
    .cfg_written = pcicfg_written,
    .cfg_reading = pcicfg_reading,
};

/* ---- creation
 * ------------------------------------------------------------------------------------ */

static int add_vcap(struct spk_virtio *vd, uint8_t type, uint32_t off, uint32_t len, uint8_t *at)
{
	uint8_t cap[20] = {0}, wmask[20] = {0};
	uint8_t cap_len = 16;

	cap[3] = type;
	cap[4] = BAR;
	spk_put_le(cap + 8, off, 4);
	spk_put_le(cap + 12, len, 4);
	if (type == CAP_NOTIFY) {
		spk_put_le(cap + 16, NOTIFY_MULT, 4);
		cap_len = 20;
	} else if (type == CAP_PCI_CFG) {
		cap_len = 20;
		wmask[4] = 0xff;
		memset(wmask + 8, 0xff, 12); /* offset, length, data */
	}
	cap[2] = cap_len;
	return spk_pci_dev_add_cap(vd->pdev, SPK_PCI_CAP_ID_VENDOR, cap, cap_len,
	                           type == CAP_PCI_CFG ? wmask : NULL, type == CAP_PCI_CFG, at);
}

static int add_caps(struct spk_virtio *vd)
{
	int rc;

	if ((rc = add_vcap(vd, CAP_COMMON, COMMON_OFF, COMMON_LEN, NULL)) < 0 ||
	    (rc = add_vcap(vd, CAP_NOTIFY, NOTIFY_OFF, NOTIFY_MULT * vd->nq, NULL)) < 0 ||
	    (rc = add_vcap(vd, CAP_ISR, ISR_OFF, 1, NULL)) < 0)
		return rc;
	if (vd->cfg.config_size &&
	    (rc = add_vcap(vd, CAP_DEVICE, DEVCFG_OFF, vd->cfg.config_size, NULL)) < 0)
		return rc;
	if ((rc = add_vcap(vd, CAP_PCI_CFG, 0, 0, &vd->pcicfg_cap)) < 0)
		return rc;
	return spk_pci_dev_add_msix(vd->pdev, (uint16_t)(vd->nq + 1), BAR, MSIX_TABLE_OFF,
	                            MSIX_PBA_OFF);
}

static int make_pci(struct spk_virtio *vd)
{
	const struct spk_virtio_config *c = &vd->cfg;
	const struct spk_pci_dev_config pc = {
	    .name = c->name,
	    .vendor = VIRTIO_VENDOR,
	    .device = (uint16_t)(VIRTIO_DEVICE_0 + c->device_id),
	    .subsys_vendor = VIRTIO_VENDOR,
	    .subsys_id = c->device_id,
	    .revision = VIRTIO_REVISION,
	    .class_code = c->class_code ? c->class_code : CLASS_OTHER,
	    .irq_pin = 1,
	    .ops = &pci_ops,
	    .opaque = vd,
	};
	int rc;

	if ((rc = spk_pci_dev_new(&pc, &vd->pdev)) < 0 ||
	    (rc = spk_pci_dev_add_bar(vd->pdev, BAR, BAR_SIZE, SPK_PCI_BAR_64)) < 0 ||
	    (rc = add_caps(vd)) < 0)
		return rc;
	return spk_pci_host_add(c->pci, vd->pdev, c->slot, NULL);
}

static int make_queues(struct spk_virtio *vd)
{
	int rc;

	vd->q = calloc(vd->nq, sizeof(*vd->q));
	vd->kicks = calloc(vd->nq, sizeof(*vd->kicks));
	if (!vd->q || !vd->kicks)
		return spk_fail(ENOMEM, "%s: out of memory for %u queues", vd->cfg.name, vd->nq);
	for (unsigned i = 0; i < vd->nq; i++)
		vd->kicks[i] = (struct kick){.vd = vd, .q = i, .fd = -1};
	for (unsigned i = 0; i < vd->nq; i++) {
		if ((rc = spk_virtq_init(&vd->q[i], (uint16_t)i, vd->cfg.queue_max)) < 0)
			return rc;
		vd->kicks[i].fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vd->kicks[i].fd < 0)
			return spk_fail(errno, "%s: eventfd for queue %u: %s", vd->cfg.name, i,
			                strerror(errno));
		if (vd->cfg.loop && (rc = spk_evloop_add(vd->cfg.loop, vd->kicks[i].fd, EPOLLIN,
		                                         on_kick, &vd->kicks[i])) < 0)
			return rc;
	}
	return 0;
}

static int transport_save(void *opaque, struct spk_snap_writer *w);
static int transport_load(void *opaque, struct spk_snap_reader *r);

static int check_config(const struct spk_virtio_config *c)
{
	if (!c || !c->name || !c->ops || !c->pci || !c->mem)
		return spk_fail(EINVAL,
		                "virtio: a device needs a name, ops, a PCI host and memory");
	if (c->num_queues == 0 || c->num_queues > MAX_QUEUES)
		return spk_fail(EINVAL, "virtio: %s: %u queues, need 1-%d", c->name, c->num_queues,
		                MAX_QUEUES);
	if (c->config_size > DEVCFG_MAX)
		return spk_fail(EINVAL, "virtio: %s: %u bytes of device config, at most %d",
		                c->name, c->config_size, DEVCFG_MAX);
	if (!c->ops->state || !c->ops->state->kind || !c->ops->state->save || !c->ops->state->load)
		return spk_fail(EINVAL,
		                "virtio: %s: the device has no state ops (spk_virtio_ops.state): "
		                "every device must save and load its state for snapshots",
		                c->name);
	if (c->features & TRANSPORT_FEATURES)
		return spk_fail(EINVAL, "virtio: %s: the transport offers features 0x%llx itself",
		                c->name, (unsigned long long)(c->features & TRANSPORT_FEATURES));
	return 0;
}

int spk_virtio_new(const struct spk_virtio_config *c, struct spk_virtio **out)
{
	struct spk_virtio *vd;
	int rc;

	if ((rc = check_config(c)) < 0)
		return rc;
	vd = calloc(1, sizeof(*vd));
	if (!vd)
		return spk_fail(ENOMEM, "virtio: %s: out of memory", c->name);
	pthread_mutex_init(&vd->lock, NULL);
	vd->cfg = *c;
	vd->ops = *c->ops;
	vd->nq = c->num_queues;
	vd->dev_features = c->features | TRANSPORT_FEATURES;
	vd->config_vector = SPK_VIRTIO_NO_VECTOR;
	vd->state_ops = (struct spk_dev_state_ops){c->ops->state->kind, c->ops->state->version,
	                                           transport_save, transport_load};
	if ((rc = make_queues(vd)) < 0 || (rc = make_pci(vd)) < 0) {
		spk_virtio_free(vd);
		return rc;
	}
	*out = vd;
	return 0;
}

void spk_virtio_free(struct spk_virtio *vd)
{
	if (!vd)
		return;
	if (vd->pdev)
		ioeventfds(vd, vd->notify_base, false);
	for (unsigned i = 0; vd->kicks && i < vd->nq; i++) {
		if (vd->kicks[i].fd < 0)
			continue;
		if (vd->cfg.loop)
			spk_evloop_del(vd->cfg.loop, vd->kicks[i].fd);
		close(vd->kicks[i].fd);
	}
	for (unsigned i = 0; vd->q && i < vd->nq; i++)
		spk_virtq_fini(&vd->q[i]);
	spk_pci_dev_free(vd->pdev);
	free(vd->kicks);
	free(vd->q);
	pthread_mutex_destroy(&vd->lock);
	free(vd);
}

/* ---- state (snapshot.h) -------------------------------------------------------------------- */

#define TRANSPORT_STATE_VERSION 1
#define STATUS_BITS                                                                                \
	(SPK_VIRTIO_S_ACKNOWLEDGE | SPK_VIRTIO_S_DRIVER | SPK_VIRTIO_S_DRIVER_OK |                 \
	 SPK_VIRTIO_S_FEATURES_OK | SPK_VIRTIO_S_NEEDS_RESET | SPK_VIRTIO_S_FAILED)

static int transport_save(void *opaque, struct spk_snap_writer *w)
{
	struct spk_virtio *vd = opaque;
	int rc = 0;

	spk_virtio_lock(vd);
	spk_snap_put_u32(w, "transport", TRANSPORT_STATE_VERSION);
	spk_snap_put_u64(w, "dev_features", vd->dev_features);
	spk_snap_put_u64(w, "drv_features", vd->drv_features);
	spk_snap_put_u32(w, "dfselect", vd->dfselect);
	spk_snap_put_u32(w, "gfselect", vd->gfselect);
	spk_snap_put_u16(w, "config_vector", vd->config_vector);
	spk_snap_put_u16(w, "qsel", vd->qsel);
	spk_snap_put_u8(w, "status", vd->status);
	spk_snap_put_u8(w, "isr", vd->isr);
	spk_snap_put_u8(w, "generation", vd->generation);
	spk_snap_put_u16(w, "queues", vd->nq);
	if (vd->ops.quiesce)
		vd->ops.quiesce(vd->cfg.opaque, vd);
	for (unsigned i = 0; i < vd->nq && !rc; i++)
		rc = spk_virtq_state_save(&vd->q[i], w);
	spk_virtio_unlock(vd);
	/* outside the device lock: PCI's config lock comes before it */
	if (!rc)
		rc = spk_pci_dev_state_save(vd->pdev, w);
	if (!rc) {
		spk_virtio_lock(vd);
		rc = vd->ops.state->save(vd->cfg.opaque, w);
		spk_virtio_unlock(vd);
	}
	return rc ? rc : spk_snap_writer_error(w);
}

/* What a loaded transport will be, checked, before it is applied. */
struct transport_state {
	uint64_t drv_features;
	uint32_t dfselect, gfselect;
	uint16_t config_vector, qsel;
	uint8_t status, isr, generation;
	struct spk_virtq *q;
};

static int read_transport(struct spk_virtio *vd, struct spk_snap_reader *r,
                          struct transport_state *t)
{
	uint64_t dev_features, status, isr;
	uint32_t version;
	uint16_t nq, nvec = (uint16_t)(vd->nq + 1);
	int rc;

	if ((rc = spk_snap_get_u32(r, "transport", &version)))
		return rc;
	if (version != TRANSPORT_STATE_VERSION)
		return spk_snap_bad(r, "transport", "version %u, this transport reads %d", version,
		                    TRANSPORT_STATE_VERSION);
	if ((rc = spk_snap_get_u64(r, "dev_features", &dev_features)) ||
	    (rc = spk_snap_get_u64(r, "drv_features", &t->drv_features)))
		return rc;
	if (t->drv_features & ~vd->dev_features)
		return spk_snap_bad(
		    r, "drv_features",
		    "0x%" PRIx64 " has features 0x%" PRIx64 " this %s does not offer",
		    t->drv_features, t->drv_features & ~vd->dev_features, spk_virtio_name(vd));
	if ((rc = spk_snap_get_u32(r, "dfselect", &t->dfselect)) ||
	    (rc = spk_snap_get_u32(r, "gfselect", &t->gfselect)) ||
	    (rc = spk_snap_get_u16(r, "config_vector", &t->config_vector)))
		return rc;
	if (t->config_vector != SPK_VIRTIO_NO_VECTOR && t->config_vector >= nvec)
		return spk_snap_bad(r, "config_vector", "%u: the table has %u vectors",
		                    t->config_vector, nvec);
	if ((rc = spk_snap_get_u16(r, "qsel", &t->qsel)) ||
	    (rc = spk_snap_get_mask(r, "status", STATUS_BITS, &status)))
		return rc;
	t->status = (uint8_t)status;
	if ((t->status & SPK_VIRTIO_S_FEATURES_OK) &&
	    !(t->drv_features & SPK_VIRTIO_F_BIT(SPK_VIRTIO_F_VERSION_1)))
		return spk_snap_bad(r, "status", "FEATURES_OK without VERSION_1 in the features");
	if ((t->status & SPK_VIRTIO_S_DRIVER_OK) && !(t->status & SPK_VIRTIO_S_FEATURES_OK))
		return spk_snap_bad(r, "status", "DRIVER_OK without FEATURES_OK");
	if ((rc = spk_snap_get_mask(r, "isr", ISR_QUEUE | ISR_CONFIG, &isr)) ||
	    (rc = spk_snap_get_u8(r, "generation", &t->generation)) ||
	    (rc = spk_snap_get_u16(r, "queues", &nq)))
		return rc;
	t->isr = (uint8_t)isr;
	if (nq != vd->nq)
		return spk_snap_bad(r, "queues", "%u, this %s has %u", nq, spk_virtio_name(vd),
		                    vd->nq);
	t->q = calloc(vd->nq, sizeof(*t->q));
	if (!t->q)
		return spk_fail(ENOMEM, "%s: out of memory", spk_virtio_name(vd));
	for (unsigned i = 0; i < vd->nq; i++) {
		bool ev = t->drv_features & SPK_VIRTIO_F_BIT(SPK_VIRTIO_F_EVENT_IDX);
		bool ind = t->drv_features & SPK_VIRTIO_F_BIT(SPK_VIRTIO_F_INDIRECT_DESC);

		if ((rc = spk_virtq_state_read(&vd->q[i], r, vd->cfg.mem, ev, ind, nvec, &t->q[i])))
			return rc;
	}
	return 0;
}

static void apply_transport(struct spk_virtio *vd, const struct transport_state *t)
{
	vd->drv_features = t->drv_features;
	vd->dfselect = t->dfselect;
	vd->gfselect = t->gfselect;
	vd->config_vector = t->config_vector;
	vd->qsel = t->qsel;
	vd->status = t->status;
	vd->isr = t->isr;
	vd->generation = t->generation;
	for (unsigned i = 0; i < vd->nq; i++)
		spk_virtq_state_apply(&vd->q[i], &t->q[i]);
}

/*
 * The device's section: the transport's fields and queues, the device's own
 * (its load checks them all, then applies them), then the PCI function's.
 * The transport and PCI parts are applied only once the device's load and
 * every check passed; a device load never fails after applying.
 */
static int transport_load(void *opaque, struct spk_snap_reader *r)
{
	struct spk_virtio *vd = opaque;
	struct transport_state t = {0};
	struct spk_pci_dev_state *pst = NULL;
	bool work[MAX_QUEUES] = {false};
	int rc;

	spk_virtio_lock(vd);
	if ((rc = read_transport(vd, r, &t))) {
		spk_virtio_unlock(vd);
		goto out;
	}
	spk_virtio_unlock(vd);
	/* the PCI part before the device's fields are applied (it reads and checks only) */
	if ((rc = spk_pci_dev_state_read(vd->pdev, r, &pst)))
		goto out;
	/* the device's own: it reads its fields, checks them and reader_done, then applies */
	spk_virtio_lock(vd);
	rc = vd->ops.state->load(vd->cfg.opaque, r);
	if (rc) {
		spk_virtio_unlock(vd);
		goto out;
	}
	apply_transport(vd, &t);
	for (unsigned i = 0; i < vd->nq; i++)
		work[i] = spk_virtio_running(vd) && spk_virtq_has_work(&vd->q[i]);
	spk_virtio_unlock(vd);
	spk_pci_dev_state_apply(vd->pdev, pst); /* BARs (ioeventfds follow), MSI-X */
	pst = NULL;
	spk_virtio_lock(vd);
	spk_pci_intx(vd->pdev, vd->isr != 0);
	if (vd->ops.restored)
		vd->ops.restored(vd->cfg.opaque, vd);
	/*
	 * Each queue that has used entries signals once: the saved LAPIC may
	 * lack the interrupt of a completion made just before the snapshot
	 * (an irqfd's MSI can be injected after the vCPU state was read), and
	 * a driver that waits for it would wait forever. A spurious interrupt
	 * only makes the driver look at its used ring.
	 */
	for (unsigned i = 0; i < vd->nq; i++)
		if (spk_virtio_running(vd) && vd->q[i].used_idx != 0)
			irq_raise(vd, vd->q[i].msix_vector, ISR_QUEUE);
	/* requests the driver posted that the saved device had not taken */
	for (unsigned i = 0; i < vd->nq; i++)
		if (work[i])
			spk_virtio_kick(vd, i);
	spk_virtio_unlock(vd);
out:
	spk_pci_dev_state_free(pst);
	free(t.q);
	return rc;
}

int spk_virtio_quiesce(void *opaque)
{
	struct spk_virtio *vd = opaque;

	if (!vd)
		return spk_fail(EINVAL, "virtio: quiesce needs a device");
	spk_virtio_lock(vd);
	if (vd->ops.quiesce)
		vd->ops.quiesce(vd->cfg.opaque, vd);
	spk_virtio_unlock(vd);
	return 0;
}

const struct spk_dev_state_ops *spk_virtio_state_ops(struct spk_virtio *vd)
{
	if (!vd) {
		spk_fail(EINVAL, "virtio: state_ops needs a device");
		return NULL;
	}
	return &vd->state_ops;
}
