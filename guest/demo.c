/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The demo guest for `make demo` (run by `sparkler sandbox`): a greeting
 * through the console hypercall, port I/O to the debug port, MMIO to the
 * sandbox's clock device, a second vCPU, then power off: the SYSTEM_OFF
 * hypercall ends the run with a SYSTEM_DOWN exit (status 0), and
 * `--stats` prints its table. Checked by tests/guest/demo_test.py.
 */
#include <guest.h>

#define DEBUG_PORT 0xe9          /* bytes written here go to the console */
#define SANDBOX_DEV 0xfeb00000ull /* sparkler sandbox device (see sparkler.1) */
#define DEV_MAGIC 0x00
#define DEV_NCPUS 0x08
#define DEV_CLOCK 0x10

static volatile uint64_t cpu1_result;
static volatile int cpu1_done;

static void secondary(uint64_t n)
{
	uint64_t sum = 0;

	for (uint64_t i = 1; i <= n; i++)
		sum += i;
	cpu1_result = sum;
	cpu1_done = 1;
	guest_cpu_off();
}

static void debug_port_puts(const char *s)
{
	while (*s)
		outb(DEBUG_PORT, (uint8_t)*s++);
}

int main(void)
{
	guest_printf("Hello from a sparkler guest on vCPU %u!\n", guest_vcpu_id());

	uint64_t magic = mmio_read64(SANDBOX_DEV + DEV_MAGIC);
	uint64_t ncpus = mmio_read64(SANDBOX_DEV + DEV_NCPUS);
	uint64_t t0 = mmio_read64(SANDBOX_DEV + DEV_CLOCK);
	guest_printf("sandbox device: magic %lx, %lu vCPUs\n", magic, ncpus);
	GUEST_ASSERT_EQ(magic, 0x58424e5350534b53ull); /* "SKSPSNBX" */

	debug_port_puts("port I/O: one exit per byte on port 0xe9\n");

	if (ncpus > 1) {
		GUEST_ASSERT_EQ(guest_cpu_on(1, secondary, 100), 0);
		while (!cpu1_done)
			guest_pause();
		guest_printf("vCPU 1 summed 1..100 = %lu\n", cpu1_result);
		GUEST_ASSERT_EQ(cpu1_result, 5050);
	}
	for (int i = 0; i < 50; i++)
		(void)mmio_read64(SANDBOX_DEV + DEV_CLOCK);
	uint64_t t1 = mmio_read64(SANDBOX_DEV + DEV_CLOCK);
	guest_printf("clock device: %lu ns between the first and the last read\n", t1 - t0);
	guest_printf("Goodbye.\n");
	guest_system_off(); /* SYSTEM_DOWN: the sandbox ends with status 0 */
}
