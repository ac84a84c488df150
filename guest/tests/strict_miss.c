/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Accesses to no device (tests/guest/guest_tests.c, case strict_miss):
 * first it says where its MMIO read is (ucall SYNC 1), then a 4-byte
 * MMIO read of 0xd0000100, then a 1-byte port write of 0x5a to 0x510.
 * Under SPK_MISS_FATAL each one ends the run as INTERNAL_ERROR.
 */
#include <guest.h>

extern char strict_mmio_insn[];

int main(void)
{
	uint32_t v;

	guest_sync(1, (uint64_t)strict_mmio_insn);
	__asm__ volatile(".globl strict_mmio_insn\n"
			 "strict_mmio_insn: movl (%1), %0"
			 : "=r"(v)
			 : "r"(0xd0000100ull)
			 : "memory");
	guest_sync(2, v);
	outb(0x510, 0x5a);
	return 0;
}
