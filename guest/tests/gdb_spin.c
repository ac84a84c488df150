/* Spins until gdb says stop: Ctrl-C, set a variable, detach. With
 * stop_spinning = 2 it spins again at CPL3 until stop_user is set. */
#include <guest.h>

volatile int stop_spinning, stop_user;
volatile uint64_t spins;

static uint64_t user_spin(uint64_t arg)
{
	while (!stop_user)
		spins++;
	return 0;
}

int main(void)
{
	while (!stop_spinning)
		spins++;
	if (stop_spinning == 2)
		guest_run_user(user_spin, 0);
	guest_printf("stopped spinning (%d)\n", stop_spinning);
	return 0;
}
