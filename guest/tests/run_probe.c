/*
 * A stand-in for Linux under `sparkler run` (tests/linux/cli_test.py): no
 * hypercalls (the machine answers them ENOSYS), output on COM1, ACPI
 * power-off, CPL0 only (the Linux boot protocol's page tables). What it
 * does is chosen by words on the kernel command line, in this order:
 *
 *	cpuid	print the CPUID leaves the test checks, one line each:
 *		"cpuid LEAF.SUB EAX EBX ECX EDX" (hex)
 *	timer	write the magic byte to the boot-timer device
 *	echo	print "echo: ready", then for each byte COM1 receives print
 *		"echo: XX" (hex) until it receives 'q'
 *	reset	reset through the ACPI reset register instead of powering off
 *
 * then "probe: done" and ACPI S5 (or the reset).
 */
#include <guest.h>

#include <sparkler/platform.h>

#define LSR_DR   0x01 /* data ready */
#define LSR_THRE 0x20 /* transmit holding register empty */

static void com1(const char *s)
{
	for (; *s; s++) {
		while (!(inb(SPK_PC_COM1 + 5) & LSR_THRE))
			;
		outb(SPK_PC_COM1, (uint8_t)*s);
	}
}

static void com1_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void com1_printf(const char *fmt, ...)
{
	char line[160];
	va_list ap;

	va_start(ap, fmt);
	guest_vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	com1(line);
}

/* Is word a whole word of the command line? */
static bool has_word(const char *word)
{
	const char *c = (const char *)SPK_PC_CMDLINE;
	size_t n = strlen(word);

	for (size_t i = 0; i < SPK_PC_CMDLINE_MAX - n && c[i]; i++)
		if ((i == 0 || c[i - 1] == ' ') && !memcmp(c + i, word, n) &&
		    (c[i + n] == ' ' || c[i + n] == '\0'))
			return true;
	return false;
}

static void cpuid_line(uint32_t leaf, uint32_t sub)
{
	uint32_t a, b, c, d;

	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(leaf), "c"(sub));
	com1_printf("cpuid %x.%x %08x %08x %08x %08x\n", leaf, sub, a, b, c, d);
}

static void echo(void)
{
	com1("echo: ready\n");
	for (;;) {
		while (!(inb(SPK_PC_COM1 + 5) & LSR_DR))
			guest_pause();
		uint8_t ch = inb(SPK_PC_COM1);

		com1_printf("echo: %02x\n", ch);
		if (ch == 'q')
			return;
	}
}

int main(void)
{
	if (has_word("cpuid")) {
		static const uint32_t leaves[][2] = {
			{0, 0}, {1, 0}, {6, 0}, {7, 0}, {0xb, 0}, {0xb, 1}, {0xb, 2}, {0xd, 0},
			{0x40000000, 0}, {0x40000001, 0},
		};
		for (size_t i = 0; i < sizeof(leaves) / sizeof(leaves[0]); i++)
			cpuid_line(leaves[i][0], leaves[i][1]);
	}
	if (has_word("timer"))
		mmio_write8(SPK_PC_BOOT_TIMER, SPK_PC_BOOT_TIMER_MAGIC);
	if (has_word("echo"))
		echo();
	com1("probe: done\n");
	if (has_word("reset"))
		outb(SPK_PC_RESET_PORT, SPK_PC_RESET_VALUE);
	else /* ACPI S5: what Linux does to power off */
		outw(SPK_PC_PM1A_CNT, (uint16_t)(SPK_PC_S5_SLP_TYP << 10 | 1u << 13));
	for (;;)
		__asm__ volatile("hlt");
}
