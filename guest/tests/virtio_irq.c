/*
 * MSI-X through KVM (an irqfd on an MSI route): the rng's queue interrupt
 * arrives at the LAPIC vector the guest programmed; masking holds it
 * pending until unmasked; a violation raises the config-change vector.
 * At CPL0 with the in-kernel irqchip (short: CPL0 is emulated on PVM).
 */
#include <guest.h>
#include <virtio.h>

#define LAPIC      0xfee00000ull
#define QVEC       0x51
#define CVEC       0x52
#define QSIZE      8
#define MSIX_QUEUE 1
#define MSIX_CFG   0

static uint8_t ring[GVQ_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static uint8_t data[2][32];
static volatile unsigned qirqs, cirqs;

static void on_queue(uint64_t v, uint64_t e, struct guest_frame *f)
{
	qirqs++;
	mmio_write32(LAPIC + 0xb0, 0); /* EOI */
}

static void on_config(uint64_t v, uint64_t e, struct guest_frame *f)
{
	cirqs++;
	mmio_write32(LAPIC + 0xb0, 0);
}

/* Sleep until *count passes n (hlt wakes on the interrupt). */
static void wait_irq(volatile unsigned *count, unsigned n)
{
	for (unsigned i = 0; *count < n && i < 1000; i++)
		__asm__ volatile("sti; hlt; cli" ::: "memory");
	GUEST_ASSERT(*count >= n);
}

int main(void)
{
	struct gvirtio d;
	uint32_t len;

	mmio_write32(LAPIC + 0xf0, 0x1ff); /* software-enable the LAPIC */
	guest_irq_set(QVEC, on_queue);
	guest_irq_set(CVEC, on_config);
	GUEST_ASSERT_EQ(gvirtio_find(&d, GV_ID_RNG), 0);
	GUEST_ASSERT(d.msix_cap != 0);
	GUEST_ASSERT_EQ(gvirtio_init(&d, 0), 0);
	GUEST_ASSERT_EQ(gvirtio_queue(&d, 0, QSIZE, ring), 0);
	gvirtio_msix_vector(&d, MSIX_CFG, 0, CVEC);
	gvirtio_msix_vector(&d, MSIX_QUEUE, 0, QVEC);
	gvirtio_msix_enable(&d, true);
	GUEST_ASSERT_EQ(gvirtio_msix_route(&d, -1, MSIX_CFG), MSIX_CFG);
	GUEST_ASSERT_EQ(gvirtio_msix_route(&d, 0, MSIX_QUEUE), MSIX_QUEUE);
	GUEST_ASSERT_EQ(gvirtio_msix_route(&d, 0, 77), GV_NO_VECTOR); /* no vector 77 */
	GUEST_ASSERT_EQ(gvirtio_msix_route(&d, 0, MSIX_QUEUE), MSIX_QUEUE);
	gvirtio_ready(&d);

	/* 1: a request, its interrupt */
	struct gvbuf b = {data[0], sizeof(data[0]), true};
	GUEST_ASSERT(gvq_submit(&d.q[0], &b, 1) >= 0);
	gvq_kick(&d.q[0]);
	wait_irq(&qirqs, 1);
	GUEST_ASSERT(gvq_poll(&d.q[0], &len) >= 0);
	GUEST_ASSERT_EQ(len, sizeof(data[0]));

	/* 2: masked, the interrupt waits in the PBA; unmasking sends it */
	mmio_write32(d.msix_table + 16 * MSIX_QUEUE + 12, 1);
	b.addr = data[1];
	GUEST_ASSERT(gvq_submit(&d.q[0], &b, 1) >= 0);
	gvq_kick(&d.q[0]);
	GUEST_ASSERT(gvq_wait(&d.q[0], &len, 1u << 20) >= 0);
	uint64_t pba = d.bar + (gpci_read((unsigned)d.slot, d.msix_cap + 8, 4) & ~7u);
	for (unsigned i = 0; !(mmio_read64(pba) & (1u << MSIX_QUEUE)) && i < 1000; i++)
		guest_pause();
	GUEST_ASSERT_EQ(mmio_read64(pba), 1u << MSIX_QUEUE);
	__asm__ volatile("sti; nop; nop; cli" ::: "memory");
	GUEST_ASSERT_EQ(qirqs, 1);
	mmio_write32(d.msix_table + 16 * MSIX_QUEUE + 12, 0);
	wait_irq(&qirqs, 2);
	GUEST_ASSERT_EQ(mmio_read64(pba), 0);

	/* 3: a broken chain: NEEDS_RESET and the config vector */
	gvq_put_desc(&d.q[0], 5, 0x80000000ull, 8, GVQ_F_WRITE, 0);
	gvq_publish(&d.q[0], 5);
	gvq_kick(&d.q[0]);
	wait_irq(&cirqs, 1);
	GUEST_ASSERT(gvirtio_status(&d) & GV_S_NEEDS_RESET);
	GUEST_ASSERT_EQ(qirqs, 2);
	return 0;
}
