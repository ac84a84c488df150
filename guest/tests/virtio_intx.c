/*
 * Legacy INTx end to end, no MSI-X: virtio-rng's INTA goes through the PCI
 * host to the IOAPIC pin the DSDT's _PRT names (GSI 16 + (slot + pin - 1)
 * % 8), which the guest programs as the platform declares a PCI GSI: level
 * triggered, active low. The handler reads the ISR (which lowers the line)
 * and then sends the EOI. An EOI without the ISR read gets the interrupt
 * again (the line is still up); a request completed under a masked pin is
 * delivered on unmask (level, not edge). The guest reports its interrupt
 * count at each SYNC after opening interrupt windows (SYNC 50 with IF set:
 * CPL0 is emulated on PVM and takes interrupts only at exits and hlt); the
 * host checks the count and the line's level. At CPL0 with the in-kernel
 * irqchip.
 */
#include <guest.h>
#include <virtio.h>

#define LAPIC       0xfee00000ull
#define IOAPIC      0xfec00000ull
#define VEC         0x53
#define QSIZE       8
#define GSI_BASE    16 /* SPK_PC_PCI_INTX_GSI */
#define INTX_LINES  8  /* SPK_PCI_INTX_LINES */
#define RTE_POL_LOW (1u << 13)
#define RTE_LEVEL   (1u << 15)
#define RTE_MASK    (1u << 16)
#define STORM       32 /* handler calls after which the pin is masked */
#define PCI_STATUS  0x06
#define PCI_INT_STS 0x08 /* status bit 3: the function asserts INTx */

static uint8_t ring[GVQ_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static uint8_t data[3][32];
static struct gvirtio dev;
static unsigned gsi;
static volatile unsigned irqs;    /* handler calls */
static volatile unsigned isr_set; /* ... that read a non-zero ISR (always the queue bit) */
static volatile unsigned int_sts; /* ... that saw the PCI INTx status bit set */
static volatile bool lazy;        /* next call: EOI without reading the ISR */

static uint32_t rte_read(unsigned pin)
{
	mmio_write32(IOAPIC, 0x10 + 2 * pin);
	return mmio_read32(IOAPIC + 0x10);
}

static void rte_write(unsigned pin, uint32_t low)
{
	mmio_write32(IOAPIC, 0x10 + 2 * pin + 1);
	mmio_write32(IOAPIC + 0x10, 0); /* destination APIC 0 */
	mmio_write32(IOAPIC, 0x10 + 2 * pin);
	mmio_write32(IOAPIC + 0x10, low);
}

static void on_intx(uint64_t v, uint64_t e, struct guest_frame *f)
{
	if (++irqs > STORM) /* a line that stays up: stop it, the counts will tell */
		rte_write(gsi, VEC | RTE_LEVEL | RTE_POL_LOW | RTE_MASK);
	int_sts += !!(gpci_read((unsigned)dev.slot, PCI_STATUS, 2) & PCI_INT_STS);
	if (lazy) {
		lazy = false; /* the line stays up: after the EOI it fires again */
		mmio_write32(LAPIC + 0xb0, 0);
		return;
	}
	uint8_t isr = gvirtio_isr(&dev); /* lowers the line */
	if (isr) {
		GUEST_ASSERT_EQ(isr, 1); /* the queue bit */
		isr_set++;
	}
	mmio_write32(LAPIC + 0xb0, 0); /* EOI */
}

/* Sleep until irqs reaches n (hlt wakes on the interrupt). */
static void wait_irq(unsigned n)
{
	for (unsigned i = 0; irqs < n && i < 1000; i++)
		__asm__ volatile("sti; hlt; cli" ::: "memory");
	GUEST_ASSERT(irqs >= n);
}

/* Interrupt windows: a line left up would fire here; then report the count. */
static void quiet(uint64_t stage)
{
	for (int i = 0; i < 4; i++) {
		__asm__ volatile("sti" ::: "memory");
		guest_sync(50, irqs);
		__asm__ volatile("cli" ::: "memory");
	}
	GUEST_ASSERT_EQ(gpci_read((unsigned)dev.slot, PCI_STATUS, 2) & PCI_INT_STS, 0);
	guest_sync(stage, irqs);
}

static void submit(unsigned k)
{
	struct gvbuf b = {data[k], sizeof(data[k]), true};

	GUEST_ASSERT(gvq_submit(&dev.q[0], &b, 1) >= 0);
	gvq_kick(&dev.q[0]);
}

int main(void)
{
	uint32_t len = 0;

	mmio_write32(LAPIC + 0xf0, 0x1ff); /* software-enable the LAPIC */
	guest_irq_set(VEC, on_intx);
	GUEST_ASSERT_EQ(gvirtio_find(&dev, GV_ID_RNG), 0);
	GUEST_ASSERT(dev.msix_cap != 0);
	/* MSI-X stays off, INTx is not disabled in the command register */
	GUEST_ASSERT_EQ(gpci_read((unsigned)dev.slot, dev.msix_cap + 2, 2) & 0x8000, 0);
	GUEST_ASSERT_EQ(gpci_read((unsigned)dev.slot, 0x04, 2) & 0x400, 0);
	unsigned pin = gpci_read((unsigned)dev.slot, 0x3d, 1);
	GUEST_ASSERT(pin >= 1 && pin <= 4);
	gsi = GSI_BASE + ((unsigned)dev.slot + pin - 1) % INTX_LINES;
	GUEST_ASSERT_EQ(gvirtio_init(&dev, 0), 0);
	GUEST_ASSERT_EQ(gvirtio_queue(&dev, 0, QSIZE, ring), 0);
	gvirtio_ready(&dev);
	rte_write(gsi, VEC | RTE_LEVEL | RTE_POL_LOW);
	GUEST_ASSERT_EQ(rte_read(gsi), VEC | RTE_LEVEL | RTE_POL_LOW);
	guest_sync(1, gsi); /* the host: the line is low, never raised */

	/* 1: a request, its interrupt; the handler's ISR read lowered the line */
	submit(0);
	wait_irq(1);
	quiet(2);
	GUEST_ASSERT_EQ(isr_set, 1);
	GUEST_ASSERT_EQ(int_sts, 1);
	GUEST_ASSERT(gvq_poll(&dev.q[0], &len) >= 0);
	GUEST_ASSERT_EQ(len, sizeof(data[0]));

	/* 2: an EOI without the ISR read: the line is still up, it fires again */
	unsigned before = irqs;
	lazy = true;
	submit(1);
	wait_irq(before + 2);
	quiet(3);
	GUEST_ASSERT_EQ(isr_set, 2);
	GUEST_ASSERT_EQ(int_sts, 3);
	GUEST_ASSERT(gvq_poll(&dev.q[0], &len) >= 0);

	/* 3: masked pin: the line goes up, nothing arrives; unmask delivers it */
	before = irqs;
	rte_write(gsi, VEC | RTE_LEVEL | RTE_POL_LOW | RTE_MASK);
	submit(2);
	GUEST_ASSERT(gvq_wait(&dev.q[0], &len, 1u << 20) >= 0);
	GUEST_ASSERT_EQ(len, sizeof(data[2]));
	GUEST_ASSERT(gpci_read((unsigned)dev.slot, PCI_STATUS, 2) & PCI_INT_STS);
	__asm__ volatile("sti" ::: "memory");
	guest_sync(4, irqs); /* the host: the line is up; a window, masked */
	__asm__ volatile("cli" ::: "memory");
	GUEST_ASSERT_EQ(irqs, before);
	rte_write(gsi, VEC | RTE_LEVEL | RTE_POL_LOW);
	wait_irq(before + 1);
	quiet(5);
	GUEST_ASSERT_EQ(isr_set, 3);
	GUEST_ASSERT_EQ(int_sts, 4);
	return 0;
}
