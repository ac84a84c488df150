/* SPDX-License-Identifier: Apache-2.0 */
/*
 * INTERNAL_ERROR: an instruction KVM cannot run. On PVM hosts (see
 * PLATFORM.md) `xsave` at CPL0 goes to KVM's emulator, which cannot run it:
 * KVM_EXIT_INTERNAL_ERROR, suberror 1, with the instruction bytes
 * (0f ae 21 = xsave (%rcx), then the hlt bytes that follow it). The guest
 * first reports the instruction's address (ucall SYNC 1) so that the host
 * checks the pc and the bytes against memory. On VMX/SVM `xsave` runs (or
 * raises #UD: CR4.OSXSAVE is clear) and the guest jumps into the hole at
 * 0xd0000000, whose fetch cannot be emulated: INTERNAL_ERROR there.
 */
#include <guest.h>

extern char xsave_insn[];
static uint8_t area[4096] __attribute__((aligned(64)));

static void to_the_hole(uint64_t vector, uint64_t error, struct guest_frame *frame)
{
	((void (*)(void))0xd0000000ull)();
}

int main(void)
{
	guest_irq_set(6, to_the_hole); /* #UD */
	guest_sync(1, (uint64_t)xsave_insn);
	__asm__ volatile(".globl xsave_insn\n"
			 "xsave_insn: xsave (%%rcx)\n"
			 "hlt; hlt; hlt; hlt"
			 :
			 : "c"(area), "a"(1), "d"(0)
			 : "memory");
	((void (*)(void))0xd0000000ull)();
	return 1;
}
