/* CPU_UP starts vCPU 1 at the SDK's entry with its argument; SEND_IPI
 * interrupts it; CPU_DOWN stops it. With an in-kernel irqchip the IPI goes
 * through the LAPIC, so the guest enables it and sends EOIs. */
#include <guest.h>

#define LAPIC 0xfee00000ull
#define IPI_VECTOR 0x40

static volatile uint64_t seen_arg;
static volatile int ipi_count, cpu1_ready, cpu1_done;
extern char guest_secondary_entry[];

static void on_ipi(uint64_t vector, uint64_t error, struct guest_frame *f)
{
	ipi_count++;
	mmio_write32(LAPIC + 0xb0, 0); /* EOI */
}

static void secondary(uint64_t arg)
{
	seen_arg = arg;
	GUEST_ASSERT_EQ(guest_vcpu_id(), 1);
	mmio_write32(LAPIC + 0xf0, 0x1ff); /* software-enable the LAPIC */
	guest_irq_set(IPI_VECTOR, on_ipi);
	guest_sti();
	cpu1_ready = 1;
	while (!ipi_count)
		guest_pause();
	cpu1_done = 1;
	guest_cpu_off();
}

int main(void)
{
	/* tell the host what CPU_UP must carry */
	guest_sync(1, (uint64_t)guest_secondary_entry);
	GUEST_ASSERT_EQ(guest_cpu_on(1, secondary, 0x1234), 0);
	GUEST_ASSERT(guest_cpu_on(1, secondary, 0x1234) != 0); /* already on */
	while (!cpu1_ready)
		guest_pause();
	GUEST_ASSERT_EQ(seen_arg, 0x1234);
	GUEST_ASSERT_EQ(guest_send_ipi(1, IPI_VECTOR, 0), 0);
	while (!cpu1_done)
		guest_pause();
	GUEST_ASSERT_EQ(ipi_count, 1);
	return 0;
}
