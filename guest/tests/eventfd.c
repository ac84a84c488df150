/*
 * The KVM glue under the virtio devices, without them: ioeventfds on
 * ports and MMIO (with and without a match value) take writes without an
 * exit; an irqfd on an MSI route, KVM_SIGNAL_MSI and an IOAPIC pin (the
 * default routes kept next to the MSI ones) all reach the LAPIC. The host
 * checks counters at each SYNC. At CPL0 with the in-kernel irqchip.
 */
#include <guest.h>

#define LAPIC   0xfee00000ull
#define IOAPIC  0xfec00000ull
#define MMIO    0xd0000000ull
#define PIN     20
#define V_IRQFD 0x60
#define V_MSI   0x61
#define V_PIN   0x62
#define V_MOVED 0x63

static volatile unsigned hits[256];

static void on_irq(uint64_t v, uint64_t e, struct guest_frame *f)
{
	hits[v & 0xff]++;
	mmio_write32(LAPIC + 0xb0, 0);
}

static void ioapic_route(unsigned pin, uint8_t vector)
{
	mmio_write32(IOAPIC, 0x10 + 2 * pin + 1);
	mmio_write32(IOAPIC + 0x10, 0); /* destination APIC 0 */
	mmio_write32(IOAPIC, 0x10 + 2 * pin);
	mmio_write32(IOAPIC + 0x10, vector); /* fixed, physical, edge, high, unmasked */
}

static void wait_hits(uint8_t v, unsigned n)
{
	for (unsigned i = 0; hits[v] < n && i < 1000; i++)
		__asm__ volatile("sti; hlt; cli" ::: "memory");
	GUEST_ASSERT_EQ(hits[v], n);
}

int main(void)
{
	/* 1: doorbells */
	for (int i = 0; i < 3; i++)
		outb(0x700, (uint8_t)i);
	outw(0x702, 0x5a5a);
	outw(0x702, 0x5a5a);
	outw(0x702, 0x1111); /* no match: exits to the bus */
	mmio_write32(MMIO, 7);
	mmio_write32(MMIO, 8);
	mmio_write64(MMIO + 0x10, 0x0123456789abcdefull);
	mmio_write64(MMIO + 0x10, 42); /* no match */
	guest_sync(1, 0);
	/* 2: the port ioeventfd was removed: this one exits */
	outb(0x700, 9);
	guest_sync(2, 0);

	/* 3: interrupts */
	mmio_write32(LAPIC + 0xf0, 0x1ff);
	for (unsigned v = V_IRQFD; v <= V_MOVED; v++)
		guest_irq_set((uint8_t)v, on_irq);
	ioapic_route(PIN, V_PIN);
	guest_sync(3, 0); /* the host fires the irqfd, an MSI and the pin */
	wait_hits(V_IRQFD, 1);
	wait_hits(V_MSI, 1);
	wait_hits(V_PIN, 1);
	guest_sync(4, 0); /* the route now points at V_MOVED; fired again */
	wait_hits(V_MOVED, 1);
	GUEST_ASSERT_EQ(hits[V_IRQFD], 1);
	return 0;
}
