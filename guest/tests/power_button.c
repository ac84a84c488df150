/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ACPI power button end to end (tests/linux/cli_test.py, tests/api):
 * a stand-in for Linux's button driver and acpid. It enables GPE 0 (the
 * power button, GPE0_EN bit 0), says "pb: waiting" on COM1, then polls
 * GPE0_STS until bit 0 is set, which is what the host's SIGPWR does
 * (spk_machine_power_button). It clears the bit (write 1), says
 * "pb: pressed" and powers off through ACPI S5 the way the FADT and the
 * DSDT's \_S5 say: SLP_TYP 5 | SLP_EN in PM1a_CNT.
 *
 * Interrupts stay off: the SCI goes nowhere, the status bit is the
 * button. The loop runs at CPL0, like t_ctrl_alt_del's and t_run_probe's
 * (the Linux boot protocol's GDT has no user segments); each turn is one
 * port exit and a pause.
 */
#include <guest.h>

#include <sparkler/platform.h>

#define LSR_THRE      0x20 /* transmit holding register empty */
#define GPE0_STS      SPK_PC_GPE0_BLK
#define GPE0_EN       (SPK_PC_GPE0_BLK + 2)
#define GPE_PWRBTN    0x0001
#define SLP_TYP_SHIFT 10
#define SLP_EN        0x2000

static void com1(const char *s)
{
	for (; *s; s++) {
		while (!(inb(SPK_PC_COM1 + 5) & LSR_THRE))
			;
		outb(SPK_PC_COM1, (uint8_t)*s);
	}
}

int main(void)
{
	outw(GPE0_EN, GPE_PWRBTN);
	com1("pb: waiting\n");
	while (!(inw(GPE0_STS) & GPE_PWRBTN))
		guest_pause();
	outw(GPE0_STS, GPE_PWRBTN); /* write 1 to clear */
	if (inw(GPE0_STS) & GPE_PWRBTN)
		com1("pb: status did not clear\n");
	else
		com1("pb: pressed\n");
	outw(SPK_PC_PM1A_CNT, (uint16_t)(SPK_PC_S5_SLP_TYP << SLP_TYP_SHIFT | SLP_EN));
	for (;;)
		__asm__ volatile("hlt");
}
