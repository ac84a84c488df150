/* Port I/O exits at widths 1/2/4, rep outsw / insb, a bus device, the
 * ignore policy. */
#include <guest.h>

#define RAW 0x400
#define DEV 0x500

static uint16_t words[4] = {0x1111, 0x2222, 0x3333, 0x4444};
static uint8_t bytes[8];

int main(void)
{
	outb(RAW, 0x12);
	outw(RAW, 0x3456);
	outl(RAW, 0x789abcde);
	GUEST_ASSERT_EQ(inb(RAW), 0xa5);
	GUEST_ASSERT_EQ(inw(RAW), 0xb6c7);
	GUEST_ASSERT_EQ(inl(RAW), 0xd8e9fa0bu);

	/* string I/O: one exit for the whole rep */
	const uint16_t *src = words;
	uint8_t *dst = bytes;
	unsigned long n = 4;
	__asm__ volatile("rep outsw" : "+S"(src), "+c"(n) : "d"((uint16_t)RAW) : "memory");
	n = 8;
	__asm__ volatile("rep insb" : "+D"(dst), "+c"(n) : "d"((uint16_t)RAW) : "memory");
	for (int i = 0; i < 8; i++)
		GUEST_ASSERT_EQ(bytes[i], 0x30 + i);

	/* a device: stores bytes written, reads back port offset * 3 */
	outb(DEV + 2, 0x77);
	GUEST_ASSERT_EQ(inb(DEV + 2), 0x77);
	GUEST_ASSERT_EQ(inw(DEV + 4), 12);

	/* the host switches PIO misses to "ignore": empty ports read all-ones */
	guest_sync(1, 0);
	GUEST_ASSERT_EQ(inb(RAW + 1), 0xff);
	GUEST_ASSERT_EQ(inw(RAW + 2), 0xffff);
	GUEST_ASSERT_EQ(inl(RAW + 4), 0xffffffffu);
	outb(RAW + 1, 1); /* dropped, no exit */
	return 0;
}
