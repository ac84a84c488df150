/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PSCI CPU_ON / CPU_OFF through the monitor's runner: vCPU 1 starts with
 * its argument; a second CPU_ON while it runs is ALREADY_ON; one for an
 * MPIDR no vCPU has (5, and one with bits above Aff2) is
 * INVALID_PARAMETERS; vCPU 1 turns itself off (CPU_OFF) and is started
 * again; then main() returns (SYSTEM_OFF) while vCPU 1 sleeps in WFI.
 */
#include <guest.h>

static volatile uint64_t seen, go, off, again;

static void second(uint64_t arg)
{
	GUEST_ASSERT_EQ(guest_vcpu_id(), 1);
	seen = arg;
	while (!go)
		guest_pause();
	guest_sync(1, arg);
	off = 1;
	/* returning is PSCI CPU_OFF */
}

static void sleeper(uint64_t arg)
{
	again = arg;
	for (;;)
		guest_wfi();
}

int main(void)
{
	int64_t r;

	GUEST_ASSERT_EQ(guest_cpu_on(1, second, 0xabc), 0);
	while (seen != 0xabc)
		guest_pause();
	GUEST_ASSERT_EQ(guest_cpu_on(1, second, 0), GUEST_PSCI_ALREADY_ON);
	GUEST_ASSERT_EQ(guest_cpu_on(5, second, 0), GUEST_PSCI_INVALID_PARAMS);
	r = (int64_t)guest_smccc(GUEST_PSCI_CPU_ON, 1ull << 40 | 1, 0x40080000, 0, 0, 0, 0);
	GUEST_ASSERT_EQ(r, GUEST_PSCI_INVALID_PARAMS);
	go = 1;
	while (!off)
		guest_pause();
	/* until the monitor has taken vCPU 1's CPU_OFF, it is still on */
	while ((r = guest_cpu_on(1, sleeper, 0xdef)) == GUEST_PSCI_ALREADY_ON)
		guest_pause();
	GUEST_ASSERT_EQ(r, 0);
	while (again != 0xdef)
		guest_pause();
	return 0;
}
