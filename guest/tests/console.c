/* Console output through the hypercall, and a failing assert the host
 * decodes (expression, file, line, values). */
#include <guest.h>

int main(void)
{
	guest_printf("hello, sparkler: %d %u 0x%x %s %c %05d|%lx\n", -42, 42u, 0xbeefu, "str", 'c',
		     7, 0x123456789abcul);
	guest_sync(1, __LINE__ + 1);
	GUEST_ASSERT_EQ(1 + 1, 3);
	return 0;
}
