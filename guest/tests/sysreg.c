/* SYSREG exits for a filtered MSR; a bus MSR device; #GP on request. */
#include <guest.h>

#define MSR_RAW 0x40001234u   /* named in msr_exits: exits to the host */
#define MSR_FAULT 0x40001235u /* the host makes reads of it fault */
#define MSR_DEV 0x40001240u   /* a SYSREG device on the bus */

static volatile int gp_count;

static void on_gp(uint64_t vector, uint64_t error, struct guest_frame *f)
{
	gp_count++;
	f->rip += 2; /* skip the rdmsr/wrmsr */
}

int main(void)
{
	guest_irq_set(13, on_gp);
	wrmsr(MSR_RAW, 0x1122334455667788ull);
	GUEST_ASSERT_EQ(rdmsr(MSR_RAW), 0xcafef00d12345678ull);
	GUEST_ASSERT_EQ(gp_count, 0);
	(void)rdmsr(MSR_FAULT);
	GUEST_ASSERT_EQ(gp_count, 1);

	wrmsr(MSR_DEV, 0xabcdef);
	GUEST_ASSERT_EQ(rdmsr(MSR_DEV), 0xabcdef + 1);
	GUEST_ASSERT_EQ(rdmsr(MSR_DEV + 1), 1); /* the device sees offset 1 */
	return 0;
}
