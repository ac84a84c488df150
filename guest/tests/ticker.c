/* SPDX-License-Identifier: Apache-2.0 */
/*
 * "tick N" lines on COM1 forever, a line about every thousand port exits:
 * under `sparkler run` or the API, a guest whose serial output and exit
 * counts grow while it runs and stand still while it is paused. A byte
 * received on COM1 is echoed as "got C" (polled, no interrupts).
 */
#include <guest.h>

#define COM1     0x3f8
#define COM1_LSR (COM1 + 5)
#define LSR_DR   0x01 /* a received byte waits */

static void put(const char *s, int len)
{
	for (int i = 0; i < len; i++)
		outb(COM1, (uint8_t)s[i]);
}

int main(void)
{
	char line[32];

	for (uint64_t n = 0;; n++) {
		put(line, guest_snprintf(line, sizeof(line), "tick %lu\n", (unsigned long)n));
		while (inb(COM1_LSR) & LSR_DR)
			put(line, guest_snprintf(line, sizeof(line), "got %c\n", inb(COM1)));
		for (int i = 0; i < 1000; i++)
			outb(0x80, 0); /* an unclaimed port: an exit, nothing else */
	}
	return 0;
}
