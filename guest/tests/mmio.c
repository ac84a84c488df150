/* MMIO exits at widths 1/2/4/8, data checked both ways; a bus device. */
#include <guest.h>

#define RAW 0xd0000000ull /* nobody claims it: the host sees MMIO exits */
#define DEV 0xd0001000ull /* a device on the bus: no exit reaches the host */

int main(void)
{
	mmio_write8(RAW + 0, 0x11);
	mmio_write16(RAW + 8, 0x2233);
	mmio_write32(RAW + 16, 0x44556677);
	mmio_write64(RAW + 24, 0x8899aabbccddeeffull);
	GUEST_ASSERT_EQ(mmio_read8(RAW + 1), 0xa1);
	GUEST_ASSERT_EQ(mmio_read16(RAW + 10), 0xb2b3);
	GUEST_ASSERT_EQ(mmio_read32(RAW + 20), 0xc4c5c6c7u);
	GUEST_ASSERT_EQ(mmio_read64(RAW + 32), 0xd8d9dadbdcdddedfull);

	/* the device echoes offset + value it stored */
	mmio_write32(DEV + 0x10, 0xfeedbeef);
	GUEST_ASSERT_EQ(mmio_read32(DEV + 0x10), 0xfeedbeef);
	GUEST_ASSERT_EQ(mmio_read64(DEV + 0x18), 0x18);
	GUEST_ASSERT_EQ(mmio_read8(DEV + 0xfff), 0xff & 0xfff);
	return 0;
}
