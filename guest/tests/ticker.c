/* SPDX-License-Identifier: Apache-2.0 */
/*
 * "tick N" lines on COM1 forever, a line about every thousand port exits:
 * under `sparkler run` or the API, a guest whose serial output and exit
 * counts grow while it runs and stand still while it is paused.
 */
#include <guest.h>

#define COM1 0x3f8

int main(void)
{
	char line[32];

	for (uint64_t n = 0;; n++) {
		int len = guest_snprintf(line, sizeof(line), "tick %lu\n", (unsigned long)n);

		for (int i = 0; i < len; i++)
			outb(COM1, (uint8_t)line[i]);
		for (int i = 0; i < 1000; i++)
			outb(0x80, 0); /* an unclaimed port: an exit, nothing else */
	}
	return 0;
}
