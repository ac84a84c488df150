/* SPDX-License-Identifier: Apache-2.0 */
/* The guest SDK on arm64: boot, PSCI power and vCPUs, the vCPU id,
 * exceptions (the architecture-neutral part: ../lib/common.c). */
#include <guest.h>

uint8_t guest_stacks[GUEST_MAX_CPUS][GUEST_STACK_SIZE] __attribute__((aligned(16)));

static struct {
	void (*fn)(uint64_t);
	uint64_t arg;
} cpus[GUEST_MAX_CPUS];
static guest_exception_fn exception_fn;

void guest_secondary_entry(uint64_t id);
void guest_boot_main(void) __attribute__((noreturn));
void guest_secondary_main(uint64_t id) __attribute__((noreturn));
void guest_exception(uint64_t kind, struct guest_frame *frame);

void guest_boot_main(void)
{
	int rc = main();

	guest_done((uint64_t)(int64_t)rc);
	guest_system_off();
}

void guest_secondary_main(uint64_t id)
{
	if (id < GUEST_MAX_CPUS && cpus[id].fn)
		cpus[id].fn(cpus[id].arg);
	guest_cpu_off();
}

/* KVM/arm64 gives vCPU n the MPIDR Aff0 = n & 15, Aff1 = n >> 4. */
uint32_t guest_vcpu_id(void)
{
	uint64_t mpidr;

	__asm__ volatile("mrs %0, mpidr_el1" : "=r"(mpidr));
	return (uint32_t)((mpidr & 0xf) | ((mpidr >> 8) & 0xff) << 4);
}

void guest_system_off(void)
{
	guest_smccc(GUEST_PSCI_SYSTEM_OFF, 0, 0, 0, 0, 0, 0);
	for (;;)
		guest_pause();
}

void guest_system_reset(void)
{
	guest_smccc(GUEST_PSCI_SYSTEM_RESET, 0, 0, 0, 0, 0, 0);
	for (;;)
		guest_pause();
}

void guest_cpu_off(void)
{
	guest_smccc(GUEST_PSCI_CPU_OFF, 0, 0, 0, 0, 0, 0);
	for (;;)
		guest_pause();
}

/* PSCI CPU_ON of the vCPU whose MPIDR names cpu; 0 or a PSCI error. */
int64_t guest_cpu_on(uint32_t cpu, void (*fn)(uint64_t), uint64_t arg)
{
	uint64_t mpidr = (cpu & 0xf) | (uint64_t)(cpu >> 4) << 8;

	if (cpu < GUEST_MAX_CPUS) {
		cpus[cpu].fn = fn;
		cpus[cpu].arg = arg;
		__asm__ volatile("dmb ish" ::: "memory");
	}
	return (int64_t)guest_smccc(GUEST_PSCI_CPU_ON, mpidr, (uint64_t)guest_secondary_entry, cpu,
	                            0, 0, 0);
}

void guest_exception_set(guest_exception_fn fn)
{
	exception_fn = fn;
}

void guest_exception(uint64_t kind, struct guest_frame *frame)
{
	if (exception_fn) {
		exception_fn(kind, frame);
		return;
	}
	guest_printf("guest: unexpected exception %lu, esr 0x%lx at pc 0x%lx (far 0x%lx)\n", kind,
	             frame->esr, frame->elr, frame->far);
	guest_assert_fail("no unexpected exceptions", __FILE__, __LINE__, frame->esr, frame->elr);
}
