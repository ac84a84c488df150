/* SPDX-License-Identifier: Apache-2.0 */
/* A load pair from MMIO: no syndrome, KVM cannot emulate it. */
#include <guest.h>

int main(void)
{
	uint64_t a, b;

	__asm__ volatile("ldp %0, %1, [%2]" : "=r"(a), "=r"(b) : "r"(0x10000000ull) : "memory");
	return (int)(a + b);
}
