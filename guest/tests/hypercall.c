/* Hypercalls: six arguments and a result, embedder handlers, the library's
 * own numbers. */
#include <guest.h>

int main(void)
{
	/* nobody registered 0x155: the host sees a HYPERCALL exit */
	GUEST_ASSERT_EQ(guest_hypercall(0x155, 1, 2, 3, 4, 5, 6), 0x1234);
	/* 0x100 is registered: handled in the library, no exit */
	GUEST_ASSERT_EQ(guest_hypercall(0x100, 10, 20, 30, 40, 50, 60), 210);
	GUEST_ASSERT_EQ(guest_hypercall(0x101, 7, 0, 0, 0, 0, 0), 49);
	/* a library number that does not exist */
	GUEST_ASSERT_EQ(guest_hypercall(0x99, 0, 0, 0, 0, 0, 0), SPK_HC_ENOSYS);
	GUEST_ASSERT_EQ(guest_vcpu_id(), 0);
	/* registers other than rax survive a hypercall */
	uint64_t rdi = 0x5555, rsi = 0x6666;
	uint64_t ret = 0x155;
	__asm__ volatile("outl %%eax, %[port]"
			 : "+a"(ret), "+D"(rdi), "+S"(rsi)
			 : [port] "i"(SPK_HC_PORT), "d"(3)
			 : "memory");
	GUEST_ASSERT_EQ(ret, 0x1234);
	GUEST_ASSERT_EQ(rdi, 0x5555);
	GUEST_ASSERT_EQ(rsi, 0x6666);
	return 0;
}
