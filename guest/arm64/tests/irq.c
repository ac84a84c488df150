/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Interrupts through the in-kernel GICv3 into the SDK's vectors: the
 * virtual timer (PPI 27) fires once; then SPI 5 (INTID 37), which the
 * host raises with spk_vm_irq_line() after SYNC 2, arrives while the
 * guest waits in WFI. Each wait is for the handler's flag (masked check,
 * then wfi: an interrupt between the two is not lost).
 */
#include <guest.h>

#define TEST_SPI_INTID (32 + 5)

static volatile uint64_t timer_hits, spi_hits, spi_intid, others;

static void handler(uint64_t kind, struct guest_frame *f)
{
	uint32_t intid;

	(void)f;
	GUEST_ASSERT_EQ(kind, 5); /* IRQ, current EL with SP_ELx */
	intid = guest_gic_ack();
	if (intid == SPK_A64_TIMER_VIRT_PPI) {
		guest_timer_stop(); /* its level goes down */
		timer_hits++;
	} else if (intid >= 32 && intid < 1020) {
		guest_gic_disable(intid); /* the host lowers the line later */
		spi_intid = intid;
		spi_hits++;
	} else {
		others++;
	}
	if (intid < 1020)
		guest_gic_eoi(intid);
}

static void wait_for(volatile uint64_t *flag)
{
	guest_irq_disable();
	while (!*flag) {
		guest_wfi();
		guest_irq_enable();
		guest_irq_disable();
	}
}

int main(void)
{
	guest_exception_set(handler);
	guest_gic_init();
	guest_gic_enable(SPK_A64_TIMER_VIRT_PPI);
	guest_timer_start(guest_timer_freq() / 1000); /* 1 ms */
	wait_for(&timer_hits);
	GUEST_ASSERT_EQ(others, 0);
	guest_sync(1, timer_hits);

	guest_gic_enable(TEST_SPI_INTID);
	guest_sync(2, 0); /* the host raises the line now */
	wait_for(&spi_hits);
	GUEST_ASSERT_EQ(spi_hits, 1);
	GUEST_ASSERT_EQ(others, 0);
	guest_sync(3, spi_intid);
	return 0;
}
