/* A write nobody handles: the runner must end with a report. */
#include <guest.h>

int main(void)
{
	mmio_write32(0xc0000000ull, 1);
	return 0;
}
