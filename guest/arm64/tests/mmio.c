/* SPDX-License-Identifier: Apache-2.0 */
/* MMIO exits with the syndrome's fields: stores of each width from known
 * registers, loads that zero- and sign-extend (the host answers 0x80..); each
 * loaded value goes back to the host in a SYNC. */
#include <guest.h>

#define DEV 0x10000000ull

int main(void)
{
	register uint64_t v __asm__("x9") = 0x1122334455667788ull;
	uint64_t x;
	int64_t s;

	__asm__ volatile("strb w9, [%0]" ::"r"(DEV), "r"(v) : "memory");
	__asm__ volatile("strh w9, [%0, #2]" ::"r"(DEV), "r"(v) : "memory");
	__asm__ volatile("str w9, [%0, #4]" ::"r"(DEV), "r"(v) : "memory");
	__asm__ volatile("str x9, [%0, #8]" ::"r"(DEV), "r"(v) : "memory");
	/* the values as the guest sees them, for the host to check */
	__asm__ volatile("ldrb w10, [%1, #16]\n\tmov %0, x10"
	                 : "=r"(x)
	                 : "r"(DEV)
	                 : "x10", "memory");
	guest_sync(1, x);
	__asm__ volatile("ldrsb x11, [%1, #16]\n\tmov %0, x11"
	                 : "=r"(s)
	                 : "r"(DEV)
	                 : "x11", "memory");
	guest_sync(2, (uint64_t)s);
	__asm__ volatile("ldrsh w12, [%1, #18]\n\tmov %0, x12"
	                 : "=r"(x)
	                 : "r"(DEV)
	                 : "x12", "memory");
	guest_sync(3, x);
	__asm__ volatile("ldrsw x13, [%1, #20]\n\tmov %0, x13"
	                 : "=r"(s)
	                 : "r"(DEV)
	                 : "x13", "memory");
	guest_sync(4, (uint64_t)s);
	__asm__ volatile("ldr x14, [%1, #24]\n\tmov %0, x14"
	                 : "=r"(x)
	                 : "r"(DEV)
	                 : "x14", "memory");
	guest_sync(5, x);
	/* a device on the host's bus: routed by the library, no exit */
	*(volatile uint32_t *)(DEV + 0x1000) = 0x1234;
	guest_sync(6, *(volatile uint32_t *)(DEV + 0x1000));
	return 0;
}
