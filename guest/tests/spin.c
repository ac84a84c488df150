/* Spin forever at CPL3: the host kicks the vCPU. */
#include <guest.h>

static uint64_t spin(uint64_t arg)
{
	volatile uint64_t n = 0;

	outb(0x80, 1); /* tell the host we are at CPL3 */
	for (;;)
		n++;
	return n;
}

int main(void)
{
	return (int)guest_run_user(spin, 0);
}
