/* A hostile guest: bad pointers and lengths everywhere the library reads
 * guest memory. Every call must fail cleanly and the host must survive. */
#include <guest.h>

#define DEV 0xd0002000ull /* an 8-byte device on the bus */

int main(void)
{
	/* console writes: too long, outside RAM, wrapping, zero */
	GUEST_ASSERT_EQ(guest_hypercall(SPK_HC_CONSOLE_WRITE, 0x100000, SPK_HC_CONSOLE_MAX + 1, 0,
					0, 0, 0),
			SPK_HC_EINVAL);
	GUEST_ASSERT_EQ(guest_hypercall(SPK_HC_CONSOLE_WRITE, 0x7ffffff000ull, 16, 0, 0, 0, 0),
			SPK_HC_EFAULT);
	GUEST_ASSERT_EQ(guest_hypercall(SPK_HC_CONSOLE_WRITE, ~0ull - 3, 16, 0, 0, 0, 0),
			SPK_HC_EFAULT);
	GUEST_ASSERT_EQ(guest_hypercall(SPK_HC_CONSOLE_WRITE, 0, 0, 0, 0, 0, 0), 0);
	/* a write that ends 1 byte past RAM (16 MiB) */
	GUEST_ASSERT_EQ(guest_hypercall(SPK_HC_CONSOLE_WRITE, (16ull << 20) - 15, 16, 0, 0, 0, 0),
			SPK_HC_EFAULT);

	/* CPU_ON for a vCPU the VM does not have, SEND_IPI to nobody */
	GUEST_ASSERT((int64_t)guest_hypercall(SPK_HC_CPU_ON, 99, 0x100000, 0, 0, 0, 0) < 0);
	GUEST_ASSERT((int64_t)guest_hypercall(SPK_HC_CPU_ON, ~0ull, 0x100000, 0, 0, 0, 0) < 0);
	GUEST_ASSERT((int64_t)guest_send_ipi(7, 0x40, 0) < 0);
	GUEST_ASSERT((int64_t)guest_hypercall(SPK_HC_SEND_IPI, 0, 300, 0, 0, 0, 0) < 0);

	/* an access that starts in a device and ends past it is a miss,
	 * which the host turned into "ignore" for this test */
	GUEST_ASSERT_EQ(mmio_read64(DEV + 4), ~0ull);
	GUEST_ASSERT_EQ(mmio_read32(DEV + 4), 0x44); /* inside: the device */

	/* ucall strings that point nowhere or never end */
	guest_ucall(SPK_UCALL_ASSERT, 0xfffffffffff0ull, ~0ull, 1, 0, 0);
	return 0;
}
