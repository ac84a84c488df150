/* A function called in a loop, for breakpoints that are hit again and
 * again (tests/gdb: resuming from a hardware breakpoint must run the
 * instruction once, not stop on it again). If the debugger sets
 * use_worker, vCPU 1 calls it as often, counted apart. -O0, as the other
 * gdb guests. */
#include <guest.h>

#define CALLS 5

volatile int calls;      /* how many times tick(0) ran (vCPU 0) */
volatile int calls1;     /* how many times tick(1) ran (vCPU 1) */
volatile int use_worker; /* the debugger sets it */
volatile int worker_done;

void tick(int cpu)
{
	if (cpu)
		calls1++;
	else
		calls++;
}

static void worker(uint64_t arg)
{
	for (int i = 0; i < CALLS; i++)
		tick(1);
	worker_done = 1;
	guest_cpu_off();
}

int main(void)
{
	int two = use_worker && guest_cpu_on(1, worker, 0) == 0;

	for (int i = 0; i < CALLS; i++)
		tick(0);
	while (two && !worker_done)
		;
	guest_printf("calls=%d calls1=%d\n", calls, calls1);
	return 0;
}
