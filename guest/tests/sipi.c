/* INIT/SIPI through the in-kernel LAPIC, as Linux brings up its APs: the
 * BSP sends INIT and two SIPIs to APIC 1, which starts in real mode at the
 * SIPI vector, sets a flag in memory and reports on a port. */
#include <guest.h>

#define LAPIC 0xfee00000ull
#define ICR_LOW 0x300
#define ICR_HIGH 0x310
#define TRAMPOLINE 0x8000 /* SIPI vector 0x08 */
#define FLAG 0x7f00

/* 16-bit real-mode code, copied to 0x8000: movb $0x5a, 0x7f00 (DS = 0);
 * mov $0x5a, %al; out %al, $0x81; cli; hlt; jmp . */
static const uint8_t trampoline[] = {
	0x31, 0xc0,                   /* xor %ax, %ax */
	0x8e, 0xd8,                   /* mov %ax, %ds */
	0xc6, 0x06, 0x00, 0x7f, 0x5a, /* movb $0x5a, 0x7f00 */
	0xb0, 0x5a,                   /* mov $0x5a, %al */
	0xe6, 0x81,                   /* out %al, $0x81 */
	0xfa, 0xf4,                   /* cli; hlt */
	0xeb, 0xfe,                   /* jmp . */
};

static void icr(uint32_t high, uint32_t low)
{
	mmio_write32(LAPIC + ICR_HIGH, high);
	mmio_write32(LAPIC + ICR_LOW, low);
	while (mmio_read32(LAPIC + ICR_LOW) & (1u << 12)) /* delivery status */
		guest_pause();
}

int main(void)
{
	volatile uint8_t *flag = (volatile uint8_t *)FLAG;

	memcpy((void *)TRAMPOLINE, trampoline, sizeof(trampoline));
	*flag = 0;
	mmio_write32(LAPIC + 0xf0, 0x1ff); /* software-enable our LAPIC */
	icr(1u << 24, 0x4500);             /* INIT, assert */
	icr(1u << 24, 0x4600 | (TRAMPOLINE >> 12)); /* SIPI */
	icr(1u << 24, 0x4600 | (TRAMPOLINE >> 12)); /* and again, per the MP spec */
	for (int i = 0; i < 10000000 && *flag != 0x5a; i++)
		guest_pause();
	GUEST_ASSERT_EQ(*flag, 0x5a);
	return 0;
}
