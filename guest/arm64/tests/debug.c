/* SPDX-License-Identifier: Apache-2.0 */
/* The host single-steps the first instructions, then puts a hardware
 * breakpoint on target(). */
#include <guest.h>

void target(void);
__asm__(".globl target\ntarget:\n\tnop\n\tret\n");

int main(void)
{
	guest_sync(1, (uint64_t)target);
	target();
	return 0;
}
