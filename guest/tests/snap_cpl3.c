/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A guest for snapshots of the vCPU and the in-kernel irqchip
 * (tests/guest/snapshot_tests.c, cases cpl3 and hostile). Each step:
 *   at CPL3: count++ in memory, read the TSC, report both
 *            (outl 0x530 <- count, 0x531 <- TSC low, 0x532 <- TSC high);
 *   at CPL0: wait for the next LAPIC timer interrupt (periodic, vector
 *            0x40, about 1 ms: sti; hlt) and report the ticks (outl 0x533).
 * A VM restored from a snapshot taken between two steps must go on: the
 * count from where it was, the TSC never below what was reported, and the
 * timer's interrupts still arriving.
 */
#include <guest.h>

#define LAPIC       0xfee00000ull
#define LAPIC_EOI   0xb0
#define LAPIC_SVR   0xf0
#define LAPIC_LVT_T 0x320
#define LAPIC_TICR  0x380
#define LAPIC_TDCR  0x3e0
#define VECTOR      0x40

static volatile uint64_t count;
static volatile uint64_t ticks;

static void on_tick(uint64_t v, uint64_t e, struct guest_frame *f)
{
	ticks++;
	mmio_write32(LAPIC + LAPIC_EOI, 0);
}

static uint64_t user_step(uint64_t arg)
{
	uint32_t lo, hi;

	count++;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	outl(0x530, (uint32_t)count);
	outl(0x531, lo);
	outl(0x532, hi);
	return 0;
}

int main(void)
{
	guest_irq_set(VECTOR, on_tick);
	GUEST_ASSERT_EQ(guest_user_allow_ports(0x530, 8), 0);
	mmio_write32(LAPIC + LAPIC_SVR, 0x1ff);                 /* software enable */
	mmio_write32(LAPIC + LAPIC_TDCR, 0xb);                  /* divide by 1 */
	mmio_write32(LAPIC + LAPIC_LVT_T, VECTOR | (1u << 17)); /* periodic */
	mmio_write32(LAPIC + LAPIC_TICR, 1000000);
	for (;;) {
		uint64_t before = ticks;

		GUEST_ASSERT_EQ(guest_run_user(user_step, 0), 0);
		/* bounded: a timer that stopped ends in the assert, not a hang */
		for (int i = 0; ticks == before && i < 100000; i++)
			__asm__ volatile("sti; hlt; cli" ::: "memory");
		GUEST_ASSERT(ticks != before);
		outl(0x533, (uint32_t)ticks);
	}
	return 0;
}
