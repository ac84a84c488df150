/* SPDX-License-Identifier: Apache-2.0 */
/* PSCI CPU_ON / CPU_OFF: vCPU 1 starts with its argument, a second
 * CPU_ON while it runs is ALREADY_ON, one for a vCPU that does not exist
 * is INVALID_PARAMS; vCPU 1 then turns itself off. */
#include <guest.h>

static volatile uint64_t seen, go;

static void second(uint64_t arg)
{
	GUEST_ASSERT_EQ(guest_vcpu_id(), 1);
	seen = arg;
	while (!go)
		guest_pause();
	guest_sync(1, arg);
}

int main(void)
{
	GUEST_ASSERT_EQ(guest_cpu_on(1, second, 0xabc), 0);
	while (seen != 0xabc)
		guest_pause();
	GUEST_ASSERT_EQ(guest_cpu_on(1, second, 0), GUEST_PSCI_ALREADY_ON);
	GUEST_ASSERT_EQ(guest_cpu_on(5, second, 0), GUEST_PSCI_INVALID_PARAMS);
	go = 1;
	return 0;
}
