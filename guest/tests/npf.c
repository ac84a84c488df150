/* Nested page faults: an unbacked read and write, a write to read-only
 * memory, an unpopulated region populated by the host. */
#include <guest.h>

#define HOLE 0xe0000000ull
#define ROM 0x1000000ull
#define LAZY 0x1200000ull

int main(void)
{
	GUEST_ASSERT_EQ(mmio_read32(HOLE + 0x40), 0x5a5a5a5a);
	mmio_write16(HOLE + 0x42, 0xbeef);

	GUEST_ASSERT_EQ(mmio_read32(ROM), 0x214d4f52); /* "ROM!": no exit */
	mmio_write32(ROM + 4, 0x12345678);             /* exit, and no effect */
	GUEST_ASSERT_EQ(mmio_read32(ROM + 4), 0);

	/* first touch faults; the host populates the region and answers 0 */
	GUEST_ASSERT_EQ(mmio_read64(LAZY), 0);
	mmio_write64(LAZY + 8, 0x77); /* now RAM: no exit */
	GUEST_ASSERT_EQ(mmio_read64(LAZY + 8), 0x77);
	return 0;
}
