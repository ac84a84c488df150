/* A function called in a loop, for breakpoints that are hit again and
 * again (tests/gdb: resuming from a hardware breakpoint must run the
 * instruction once, not stop on it again). -O0, as the other gdb guests. */
#include <guest.h>

volatile int calls; /* how many times tick() ran */

void tick(void)
{
	calls++;
}

int main(void)
{
	for (int i = 0; i < 5; i++)
		tick();
	guest_printf("calls=%d\n", calls);
	return 0;
}
