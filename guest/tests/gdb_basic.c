/* The gdb tests' main guest (tests/gdb): breakpoints, steps, locals,
 * globals, a watchpoint. Built with -O0 so that every line and local is
 * where the debugger expects it. */
#include <guest.h>

volatile int counter;  /* a global gdb prints */
volatile int knob = 7; /* gdb sets it; the guest prints what it sees */
volatile int watched;  /* a watchpoint's target */

int add_one(int x)
{
	int local = x + 1; /* a local gdb prints */
	counter += local;
	return local;
}

int hw_target(int y)
{
	return y * 2;
}

void write_watched(void)
{
	for (int i = 1; i <= 3; i++)
		watched = i * 10;
}

int main(void)
{
	int r = add_one(41);
	r += hw_target(r);
	write_watched();
	guest_printf("knob=%d counter=%d r=%d watched=%d\n", knob, counter, r, watched);
	return 0;
}
