/* hlt at CPL0 without an in-kernel irqchip: a HALT exit. */
#include <guest.h>

int main(void)
{
	__asm__ volatile("hlt");
	guest_sync(1, 0xa11); /* the host resumed us after the HALT */
	return 0;
}
