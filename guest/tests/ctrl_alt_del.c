/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SendCtrlAltDel end to end (tests/api/api_test.py): polls the i8042
 * (status port 0x64, data port 0x60; interrupts stay off) until the
 * keyboard has sent 8 bytes, the length of Ctrl+Alt+Del in scancode set 1
 * (what the controller gives with translation on, its default), prints them
 * on COM1 as "cad: got XX XX ..." and powers off. The host compares the
 * bytes. Before that it reads one address of the 32-bit hole where no
 * device lives, once, so that the VMM logs a WARN line (the logger test).
 *
 * The loop runs at CPL0, like t_ticker's: the API boots guests the way it
 * boots Linux (spk_linux_setup_vcpu), whose boot GDT has no user segments,
 * so guest_run_user() cannot drop to CPL3 there (the iretq to 0x23 faults
 * and the guest resets). Each turn is one port exit, as in the ticker, and
 * the host sends Ctrl+Alt+Del as soon as the guest says it waits.
 */
#include <guest.h>

#define COM1         0x3f8
#define I8042_DATA   0x60
#define I8042_STATUS 0x64
#define STR_OBF      0x01 /* the output buffer holds a byte */
#define HOLE         0xf0000000ull
#define CAD_LEN      8

static void put(const char *s, int len)
{
	for (int i = 0; i < len; i++)
		outb(COM1, (uint8_t)s[i]);
}

static void wait_cad(void)
{
	uint8_t got[CAD_LEN];
	char line[64];
	int n;

	put("cad: waiting\n", 13);
	for (unsigned i = 0; i < CAD_LEN;) {
		if (!(inb(I8042_STATUS) & STR_OBF)) {
			guest_pause();
			continue;
		}
		got[i++] = inb(I8042_DATA);
	}
	n = guest_snprintf(line, sizeof(line), "cad: got");
	for (unsigned i = 0; i < CAD_LEN; i++)
		n += guest_snprintf(line + n, sizeof(line) - (size_t)n, " %02x", got[i]);
	line[n++] = '\n';
	put(line, n);
}

int main(void)
{
	(void)mmio_read32(HOLE); /* no device: reads all-ones, logged as a WARN */
	wait_cad();
	put("cad: powering off\n", 18);
	guest_system_off();
}
