/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The arm64 demo guest for `make demo` on an arm64 host (run by `sparkler
 * sandbox`): a greeting through the console hypercall (hvc), MMIO to the
 * sandbox's info device, the virtual timer's interrupt through the
 * in-kernel GICv3, a second vCPU started with PSCI CPU_ON, then PSCI
 * SYSTEM_OFF: the run ends with a SYSTEM_DOWN exit (status 0), and
 * `--stats` prints its table. Checked in the arm64 bed (sandbox-demo).
 */
#include <guest.h>

#define SANDBOX_DEV 0x0b000000ull /* sparkler sandbox's info device on arm64 */
#define DEV_MAGIC   0x00
#define DEV_NCPUS   0x08
#define DEV_CLOCK   0x10

static volatile uint64_t cpu1_result, ticks;
static volatile int cpu1_done;

static uint64_t dev_read(uint64_t off)
{
	return *(volatile uint64_t *)(SANDBOX_DEV + off);
}

static void secondary(uint64_t n)
{
	uint64_t sum = 0;

	for (uint64_t i = 1; i <= n; i++)
		sum += i;
	cpu1_result = sum;
	cpu1_done = 1;
	guest_cpu_off();
}

static void on_irq(uint64_t kind, struct guest_frame *f)
{
	uint32_t intid = guest_gic_ack();

	(void)f;
	GUEST_ASSERT_EQ(kind, 5); /* IRQ */
	if (intid == SPK_A64_TIMER_VIRT_PPI) {
		guest_timer_stop();
		ticks++;
	}
	if (intid < 1020)
		guest_gic_eoi(intid);
}

int main(void)
{
	guest_printf("Hello from a sparkler guest on arm64 vCPU %u!\n", guest_vcpu_id());

	uint64_t magic = dev_read(DEV_MAGIC);
	uint64_t ncpus = dev_read(DEV_NCPUS);
	uint64_t t0 = dev_read(DEV_CLOCK);
	guest_printf("sandbox device: magic %lx, %lu vCPUs\n", magic, ncpus);
	GUEST_ASSERT_EQ(magic, 0x58424e5350534b53ull); /* "SKSPSNBX" */

	/* an interrupt: the virtual timer, 1 ms from now, through the GICv3 */
	guest_exception_set(on_irq);
	guest_gic_init();
	guest_gic_enable(SPK_A64_TIMER_VIRT_PPI);
	guest_timer_start(guest_timer_freq() / 1000);
	guest_irq_disable();
	while (!ticks) {
		guest_wfi(); /* wakes when the interrupt is pending, masked or not */
		guest_irq_enable();
		guest_irq_disable();
	}
	guest_exception_set(0);
	guest_printf("timer: the virtual timer's interrupt (PPI %d) arrived\n",
	             SPK_A64_TIMER_VIRT_PPI);

	if (ncpus > 1) {
		GUEST_ASSERT_EQ(guest_cpu_on(1, secondary, 100), 0);
		while (!cpu1_done)
			guest_pause();
		guest_printf("vCPU 1 summed 1..100 = %lu\n", cpu1_result);
		GUEST_ASSERT_EQ(cpu1_result, 5050);
	}
	for (int i = 0; i < 50; i++)
		(void)dev_read(DEV_CLOCK);
	uint64_t t1 = dev_read(DEV_CLOCK);
	guest_printf("clock device: %lu ns between the first and the last read\n", t1 - t0);
	guest_printf("Goodbye.\n");
	guest_system_off(); /* PSCI SYSTEM_OFF: SYSTEM_DOWN, status 0 */
}
