/* SPDX-License-Identifier: Apache-2.0 */
/* The guest SDK's virtio-PCI driver (virtio.h). */
#include <guest.h>
#include <virtio.h>

#define CF8        0xcf8
#define CFC        0xcfc
#define VENDOR     0x1af4
#define DEVICE_0   0x1040
#define CAP_PTR    0x34
#define COMMAND    0x04
#define BAR0       0x10
#define CMD_MEM    0x2
#define CMD_MASTER 0x4
#define CAP_VENDOR 0x09
#define CAP_MSIX   0x11

/* struct virtio_pci_common_cfg */
#define CC_DFSELECT 0x00
#define CC_DF       0x04
#define CC_GFSELECT 0x08
#define CC_GF       0x0c
#define CC_MSIX     0x10
#define CC_NUMQ     0x12
#define CC_STATUS   0x14
#define CC_QSELECT  0x16
#define CC_QSIZE    0x18
#define CC_QMSIX    0x1a
#define CC_QENABLE  0x1c
#define CC_QNOTIFY  0x1e
#define CC_QDESC    0x20
#define CC_QDRIVER  0x28
#define CC_QDEVICE  0x30

#define barrier() __asm__ volatile("" ::: "memory")

/* ---- PCI ---- */

static void cf8(unsigned slot, unsigned reg)
{
	outl(CF8, 0x80000000u | (slot & 31) << 11 | (reg & 0xfc));
}

uint32_t gpci_read(unsigned slot, unsigned reg, unsigned width)
{
	uint16_t port = (uint16_t)(CFC + (reg & 3));

	cf8(slot, reg);
	if (width == 1)
		return inb(port);
	if (width == 2)
		return inw(port);
	return inl(port);
}

void gpci_write(unsigned slot, unsigned reg, unsigned width, uint32_t v)
{
	uint16_t port = (uint16_t)(CFC + (reg & 3));

	cf8(slot, reg);
	if (width == 1)
		outb(port, (uint8_t)v);
	else if (width == 2)
		outw(port, (uint16_t)v);
	else
		outl(port, v);
}

int gpci_find(uint16_t vendor, uint16_t device)
{
	for (unsigned s = 0; s < 32; s++)
		if (gpci_read(s, 0, 4) == ((uint32_t)device << 16 | vendor))
			return (int)s;
	return -1;
}

unsigned gpci_find_cap(unsigned slot, uint8_t id, unsigned from)
{
	unsigned at = from ? gpci_read(slot, from + 1, 1) : gpci_read(slot, CAP_PTR, 1);

	for (unsigned n = 0; at && n < 48; n++) { /* 48: a looped list cannot hang us */
		if (gpci_read(slot, at, 1) == id)
			return at;
		at = gpci_read(slot, at + 1, 1);
	}
	return 0;
}

/* ---- the device ---- */

static void read_caps(struct gvirtio *d)
{
	for (unsigned at = gpci_find_cap((unsigned)d->slot, CAP_VENDOR, 0); at;
	     at = gpci_find_cap((unsigned)d->slot, CAP_VENDOR, at)) {
		unsigned type = gpci_read((unsigned)d->slot, at + 3, 1);
		uint64_t addr = d->bar + gpci_read((unsigned)d->slot, at + 8, 4);

		if (type == 1)
			d->common = addr;
		else if (type == 2) {
			d->notify = addr;
			d->notify_mult = gpci_read((unsigned)d->slot, at + 16, 4);
		} else if (type == 3)
			d->isr = addr;
		else if (type == 4)
			d->device = addr;
	}
	d->msix_cap = gpci_find_cap((unsigned)d->slot, CAP_MSIX, 0);
	if (d->msix_cap)
		d->msix_table = d->bar + (gpci_read((unsigned)d->slot, d->msix_cap + 4, 4) & ~7u);
}

/* The slot of the nth function (from 0) with this vendor and device id, or -1. */
static int find_nth(uint16_t vendor, uint16_t device, unsigned n)
{
	for (unsigned s = 0; s < 32; s++)
		if (gpci_read(s, 0, 4) == ((uint32_t)device << 16 | vendor) && n-- == 0)
			return (int)s;
	return -1;
}

int gvirtio_find(struct gvirtio *d, uint16_t id)
{
	return gvirtio_find_nth(d, id, 0);
}

int gvirtio_find_nth(struct gvirtio *d, uint16_t id, unsigned n)
{
	memset(d, 0, sizeof(*d));
	d->slot = find_nth(VENDOR, (uint16_t)(DEVICE_0 + id), n);
	if (d->slot < 0)
		return -1;
	uint32_t lo = gpci_read((unsigned)d->slot, BAR0, 4);
	d->bar = lo & ~0xfull;
	if ((lo & 6) == 4) /* 64-bit */
		d->bar |= (uint64_t)gpci_read((unsigned)d->slot, BAR0 + 4, 4) << 32;
	gpci_write((unsigned)d->slot, COMMAND, 2, CMD_MEM | CMD_MASTER);
	read_caps(d);
	return d->common && d->notify && d->isr ? 0 : -1;
}

uint8_t gvirtio_status(struct gvirtio *d)
{
	return mmio_read8(d->common + CC_STATUS);
}

void gvirtio_set_status(struct gvirtio *d, uint8_t s)
{
	mmio_write8(d->common + CC_STATUS, s);
}

uint8_t gvirtio_isr(struct gvirtio *d)
{
	return mmio_read8(d->isr);
}

int gvirtio_init(struct gvirtio *d, uint64_t want)
{
	uint64_t offered;

	gvirtio_set_status(d, 0);
	if (gvirtio_status(d) != 0)
		return -1;
	gvirtio_set_status(d, GV_S_ACKNOWLEDGE);
	gvirtio_set_status(d, GV_S_ACKNOWLEDGE | GV_S_DRIVER);
	mmio_write32(d->common + CC_DFSELECT, 0);
	offered = mmio_read32(d->common + CC_DF);
	mmio_write32(d->common + CC_DFSELECT, 1);
	offered |= (uint64_t)mmio_read32(d->common + CC_DF) << 32;
	d->features = (want | GV_F_VERSION_1) & offered;
	mmio_write32(d->common + CC_GFSELECT, 0);
	mmio_write32(d->common + CC_GF, (uint32_t)d->features);
	mmio_write32(d->common + CC_GFSELECT, 1);
	mmio_write32(d->common + CC_GF, (uint32_t)(d->features >> 32));
	gvirtio_set_status(d, GV_S_ACKNOWLEDGE | GV_S_DRIVER | GV_S_FEATURES_OK);
	return gvirtio_status(d) & GV_S_FEATURES_OK ? 0 : -1;
}

static void write64(uint64_t addr, uint64_t v)
{
	mmio_write32(addr, (uint32_t)v);
	mmio_write32(addr + 4, (uint32_t)(v >> 32));
}

int gvirtio_queue(struct gvirtio *d, unsigned qi, uint16_t size, void *mem)
{
	struct gvirtq *q = &d->q[qi];
	uint8_t *m = mem;
	uint64_t avail = (uint64_t)m + 16u * size,
	         used = ((avail + 6 + 2u * size + 4095) & ~4095ull);

	if (qi >= GV_MAX_QUEUES || size > 256)
		return -1;
	memset(mem, 0, GVQ_RING_BYTES(size));
	mmio_write16(d->common + CC_QSELECT, (uint16_t)qi);
	uint16_t max = mmio_read16(d->common + CC_QSIZE);
	if (max == 0 || size > max)
		return -1;
	*q = (struct gvirtq){
	    .index = (uint16_t)qi,
	    .size = size,
	    .desc = (volatile struct gvq_desc *)m,
	    .avail = (volatile uint16_t *)avail,
	    .used = (volatile uint32_t *)used,
	    .notify = d->notify + (uint64_t)mmio_read16(d->common + CC_QNOTIFY) * d->notify_mult,
	};
	mmio_write16(d->common + CC_QSIZE, size);
	write64(d->common + CC_QDESC, (uint64_t)m);
	write64(d->common + CC_QDRIVER, avail);
	write64(d->common + CC_QDEVICE, used);
	mmio_write16(d->common + CC_QENABLE, 1);
	return mmio_read16(d->common + CC_QENABLE) == 1 ? 0 : -1;
}

void gvirtio_ready(struct gvirtio *d)
{
	gvirtio_set_status(d, gvirtio_status(d) | GV_S_DRIVER_OK);
}

uint32_t gvirtio_cfg_read(struct gvirtio *d, unsigned off, unsigned width)
{
	if (width == 1)
		return mmio_read8(d->device + off);
	if (width == 2)
		return mmio_read16(d->device + off);
	return mmio_read32(d->device + off);
}

/* ---- MSI-X ---- */

void gvirtio_msix_vector(struct gvirtio *d, unsigned vector, uint8_t apic_id, uint8_t idt_vec)
{
	uint64_t e = d->msix_table + 16ull * vector;

	mmio_write32(e, 0xfee00000u | (uint32_t)apic_id << 12);
	mmio_write32(e + 4, 0);
	mmio_write32(e + 8, idt_vec);
	mmio_write32(e + 12, 0); /* unmasked */
}

void gvirtio_msix_enable(struct gvirtio *d, bool on)
{
	gpci_write((unsigned)d->slot, d->msix_cap + 2, 2, on ? 0x8000 : 0);
}

uint16_t gvirtio_msix_route(struct gvirtio *d, int q, uint16_t vector)
{
	if (q < 0) {
		mmio_write16(d->common + CC_MSIX, vector);
		return mmio_read16(d->common + CC_MSIX);
	}
	mmio_write16(d->common + CC_QSELECT, (uint16_t)q);
	mmio_write16(d->common + CC_QMSIX, vector);
	return mmio_read16(d->common + CC_QMSIX);
}

/* ---- buffers ---- */

void gvq_put_desc(struct gvirtq *q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                  uint16_t next)
{
	volatile struct gvq_desc *e = &q->desc[i % q->size];

	e->addr = addr;
	e->len = len;
	e->flags = flags;
	e->next = next;
}

void gvq_publish(struct gvirtq *q, uint16_t head)
{
	q->avail[2 + q->avail_idx % q->size] = head;
	barrier(); /* the entry before the index (x86 keeps stores in order) */
	q->avail_idx++;
	q->avail[1] = q->avail_idx;
	barrier();
}

int gvq_submit(struct gvirtq *q, const struct gvbuf *bufs, unsigned n)
{
	uint16_t head = q->next_free % q->size;

	if (n == 0 || n > q->size)
		return -1;
	for (unsigned i = 0; i < n; i++) {
		uint16_t at = (uint16_t)((head + i) % q->size);
		uint16_t flags =
		    (uint16_t)((bufs[i].write ? GVQ_F_WRITE : 0) | (i + 1 < n ? GVQ_F_NEXT : 0));

		gvq_put_desc(q, at, (uint64_t)bufs[i].addr, bufs[i].len, flags,
		             (uint16_t)((at + 1) % q->size));
	}
	q->next_free = (uint16_t)(q->next_free + n);
	gvq_publish(q, head);
	return head;
}

void gvq_kick(struct gvirtq *q)
{
	mmio_write16(q->notify, q->index);
}

int gvq_poll(struct gvirtq *q, uint32_t *len)
{
	uint16_t idx = (uint16_t)(q->used[0] >> 16);

	if (idx == q->last_used)
		return -1;
	barrier();
	unsigned slot = q->last_used % q->size;
	uint32_t id = q->used[1 + 2 * slot];
	if (len)
		*len = q->used[2 + 2 * slot];
	q->last_used++;
	return (int)id;
}

int gvq_wait(struct gvirtq *q, uint32_t *len, uint64_t spins)
{
	for (uint64_t i = 0; i < spins; i++) {
		int head = gvq_poll(q, len);

		if (head >= 0)
			return head;
		guest_pause();
	}
	return -1;
}
