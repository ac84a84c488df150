/* Two vCPUs for the gdb tests: vCPU 1 runs worker() at CPL0 and passes
 * worker_mark(), where the test stops it; vCPU 0 waits for it. */
#include <guest.h>

volatile int worker_done;
volatile unsigned long main_waiting;

void worker_mark(int id)
{
	worker_done = id;
}

static void worker(uint64_t arg)
{
	worker_mark((int)arg);
	guest_cpu_off();
}

int main(void)
{
	GUEST_ASSERT_EQ(guest_cpu_on(1, worker, 7), 0);
	while (!worker_done)
		main_waiting++;
	guest_printf("worker_done=%d\n", worker_done);
	return 0;
}
