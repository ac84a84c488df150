/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Counts in memory and reports each step (ucall SYNC, stage 1, the count),
 * writing a byte into a 64 KiB array at each step. tests/guest/snapshot_tests.c
 * saves its memory between two steps and restores it into another VM, which
 * must go on counting from there. Every 8th step also writes a dot to the
 * console (a hypercall the library answers itself), so an in-place reset
 * can be tried right after such an exit.
 */
#include <guest.h>

static volatile uint64_t count;
static volatile uint8_t scribble[64 << 10];

int main(void)
{
	for (;;) {
		count++;
		scribble[(count * 4096) % sizeof(scribble)] = (uint8_t)count;
		if (count % 8 == 0)
			guest_puts(".");
		guest_sync(1, count);
	}
	return 0;
}
