/* SPDX-License-Identifier: Apache-2.0 */
/* An embedder hypercall with six arguments (the host answers their sum),
 * the console, and the vCPU id from MPIDR. */
#include <guest.h>

int main(void)
{
	uint64_t r = guest_hypercall(SPK_HC_EMBEDDER_BASE + 0x23, 1, 2, 3, 4, 5, 6);

	GUEST_ASSERT_EQ(r, 21);
	GUEST_ASSERT_EQ(guest_vcpu_id(), 0);
	guest_printf("hello from arm64, %d + %d = %d\n", 20, 22, 42);
	return 7;
}
