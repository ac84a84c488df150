/* SPDX-License-Identifier: Apache-2.0 */
/* Spins for ever after a sync: the host kicks it (CANCELLED). */
#include <guest.h>

int main(void)
{
	guest_sync(1, 0);
	for (;;)
		__asm__ volatile("" ::: "memory");
}
