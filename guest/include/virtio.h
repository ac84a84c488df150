/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guest SDK's virtio-PCI driver: enumerate PCI through ports
 * 0xCF8/0xCFC, find a virtio 1.x device, use the BAR the monitor placed,
 * negotiate, set up split queues in guest memory, submit buffers and poll
 * the used ring. Everything works at CPL3 too (port I/O and MMIO both
 * reach the monitor from user mode), which is where data loops belong on
 * hosts that emulate CPL0 (guest_run_user()).
 *
 * The ring fields are public so tests can also write what a broken or
 * hostile driver would (gvq_put_desc, gvq_publish).
 */
#ifndef GUEST_VIRTIO_H
#define GUEST_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>

/* ---- PCI ---- */
uint32_t gpci_read(unsigned slot, unsigned reg, unsigned width);
void gpci_write(unsigned slot, unsigned reg, unsigned width, uint32_t v);
/* The first slot of bus 0 with this vendor and device id, or -1. */
int gpci_find(uint16_t vendor, uint16_t device);
/* Config offset of capability id at or after the one at from (0: from the start), or 0. */
unsigned gpci_find_cap(unsigned slot, uint8_t id, unsigned from);

/* ---- virtio ---- */
#define GV_ID_NET     1
#define GV_ID_BLOCK   2
#define GV_ID_CONSOLE 3
#define GV_ID_RNG     4
#define GV_ID_VSOCK   19

#define GV_F_INDIRECT_DESC (1ull << 28)
#define GV_F_EVENT_IDX     (1ull << 29)
#define GV_F_VERSION_1     (1ull << 32)

#define GV_S_ACKNOWLEDGE 1
#define GV_S_DRIVER      2
#define GV_S_DRIVER_OK   4
#define GV_S_FEATURES_OK 8
#define GV_S_NEEDS_RESET 64
#define GV_S_FAILED      128

#define GVQ_F_NEXT     1
#define GVQ_F_WRITE    2
#define GVQ_F_INDIRECT 4

#define GV_MAX_QUEUES 4
#define GV_NO_VECTOR  0xffff

struct gvq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

struct gvirtq {
	uint16_t index, size;
	volatile struct gvq_desc *desc;
	volatile uint16_t *avail; /* flags, idx, ring[size], used_event */
	volatile uint32_t *used;  /* flags|idx, then (id, len) pairs */
	uint64_t notify;          /* the address to write the queue index to */
	uint16_t avail_idx;       /* our copy of avail->idx */
	uint16_t last_used;
	uint16_t next_free; /* descriptors are handed out round-robin */
};

struct gvirtio {
	int slot;
	uint64_t bar;
	uint64_t common, notify, isr, device;
	uint32_t notify_mult;
	unsigned msix_cap; /* config offset of MSI-X, 0 if none */
	uint64_t msix_table;
	uint64_t features;
	struct gvirtq q[GV_MAX_QUEUES];
};

/* Bytes of guest memory a queue of size entries needs (4 KiB aligned). */
#define GVQ_RING_BYTES(size) (((16u * (size) + 6u + 2u * (size) + 4095u) & ~4095u) + 4096u)

/*
 * Find the device of type id (GV_ID_*), enable memory decoding and bus
 * mastering, and read its capabilities. 0, or -1 if there is none.
 */
int gvirtio_find(struct gvirtio *d, uint16_t id);
/* The same for the nth device of that type (0: the first), in slot order. */
int gvirtio_find_nth(struct gvirtio *d, uint16_t id, unsigned n);
/* Reset, ACKNOWLEDGE, DRIVER, accept want & offered (VERSION_1 always),
 * FEATURES_OK. 0, or -1 if the device refused. */
int gvirtio_init(struct gvirtio *d, uint64_t want);
/* Queue q with size entries in mem (GVQ_RING_BYTES(size), 4 KiB aligned,
 * zeroed here); enables it. 0, or -1 if the device has no such queue or
 * did not enable it. */
int gvirtio_queue(struct gvirtio *d, unsigned q, uint16_t size, void *mem);
/* DRIVER_OK. */
void gvirtio_ready(struct gvirtio *d);
uint8_t gvirtio_status(struct gvirtio *d);
void gvirtio_set_status(struct gvirtio *d, uint8_t s);
uint8_t gvirtio_isr(struct gvirtio *d);
/* Device configuration space. */
uint32_t gvirtio_cfg_read(struct gvirtio *d, unsigned off, unsigned width);

/* MSI-X: point vector at the local APIC of apic_id with this IDT vector,
 * unmask it, and enable MSI-X; then route queue q (or config, q < 0). */
void gvirtio_msix_vector(struct gvirtio *d, unsigned vector, uint8_t apic_id, uint8_t idt_vec);
void gvirtio_msix_enable(struct gvirtio *d, bool on);
/* Returns what the device read back (GV_NO_VECTOR if it refused). */
uint16_t gvirtio_msix_route(struct gvirtio *d, int q, uint16_t vector);

/* A buffer for gvq_submit. */
struct gvbuf {
	const void *addr;
	uint32_t len;
	bool write; /* device-writable */
};

/* Chain n buffers (readable ones first), make them available; the head. */
int gvq_submit(struct gvirtq *q, const struct gvbuf *bufs, unsigned n);
void gvq_kick(struct gvirtq *q);
/* A finished chain: its head (and *len), or -1 if none yet. */
int gvq_poll(struct gvirtq *q, uint32_t *len);
/* Poll up to spins times; the head, or -1 on timeout. */
int gvq_wait(struct gvirtq *q, uint32_t *len, uint64_t spins);

/* Raw ring access for tests that play a broken driver. */
void gvq_put_desc(struct gvirtq *q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                  uint16_t next);
void gvq_publish(struct gvirtq *q, uint16_t head);

#endif
