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

/* ---- the GICv3 and the virtual timer ------------------------------------ */

#define GICD_CTLR       0x0000
#define GICD_IGROUPR    0x0080
#define GICD_ISENABLER  0x0100
#define GICD_ICENABLER  0x0180
#define GICD_IPRIORITYR 0x0400
#define GICR_WAKER      0x0014
#define GICR_SGI        0x10000 /* the SGI/PPI frame of a redistributor */

static inline void mmio_w32(uint64_t addr, uint32_t v)
{
	*(volatile uint32_t *)addr = v;
}

static inline uint32_t mmio_r32(uint64_t addr)
{
	return *(volatile uint32_t *)addr;
}

static inline void mmio_w8(uint64_t addr, uint8_t v)
{
	*(volatile uint8_t *)addr = v;
}

static uint64_t redist(void)
{
	return SPK_A64_GICR_BASE + (uint64_t)guest_vcpu_id() * SPK_A64_GICR_SIZE;
}

void guest_gic_init(void)
{
	uint64_t rd = redist();
	uint64_t sre;

	/* ARE (RAO with KVM's GICv3), EnableGrp1, EnableGrp0 */
	mmio_w32(SPK_A64_GICD_BASE + GICD_CTLR, (1u << 4) | (1u << 1) | 1u);
	mmio_w32(rd + GICR_WAKER, mmio_r32(rd + GICR_WAKER) & ~(1u << 1));
	for (int i = 0; i < 1000000 && (mmio_r32(rd + GICR_WAKER) & (1u << 2)); i++)
		guest_pause();
	__asm__ volatile("mrs %0, S3_0_C12_C12_5" : "=r"(sre)); /* ICC_SRE_EL1 */
	__asm__ volatile("msr S3_0_C12_C12_5, %0\n\tisb" ::"r"(sre | 1) : "memory");
	__asm__ volatile("msr S3_0_C4_C6_0, %0" ::"r"(0xffull));                  /* ICC_PMR_EL1 */
	__asm__ volatile("msr S3_0_C12_C12_3, %0" ::"r"(0ull));                   /* ICC_BPR1_EL1 */
	__asm__ volatile("msr S3_0_C12_C12_7, %0\n\tisb" ::"r"(1ull) : "memory"); /* IGRPEN1 */
}

/* The frame and register offset that hold intid's bits. */
static uint64_t gic_frame(uint32_t intid)
{
	return intid < 32 ? redist() + GICR_SGI : SPK_A64_GICD_BASE;
}

void guest_gic_enable(uint32_t intid)
{
	uint64_t f = gic_frame(intid);
	uint64_t word = 4 * (intid / 32);
	uint32_t bit = 1u << (intid % 32);

	mmio_w32(f + GICD_IGROUPR + word, mmio_r32(f + GICD_IGROUPR + word) | bit);
	mmio_w8(f + GICD_IPRIORITYR + intid, 0x80);
	mmio_w32(f + GICD_ISENABLER + word, bit);
	__asm__ volatile("dsb sy" ::: "memory");
}

void guest_gic_disable(uint32_t intid)
{
	mmio_w32(gic_frame(intid) + GICD_ICENABLER + 4 * (intid / 32), 1u << (intid % 32));
	__asm__ volatile("dsb sy" ::: "memory");
}

uint32_t guest_gic_ack(void)
{
	uint64_t v;

	__asm__ volatile("mrs %0, S3_0_C12_C12_0" : "=r"(v)::"memory"); /* ICC_IAR1_EL1 */
	return (uint32_t)(v & 0xffffff);
}

void guest_gic_eoi(uint32_t intid)
{
	__asm__ volatile("msr S3_0_C12_C12_1, %0\n\tisb" ::"r"((uint64_t)intid)
	                 : "memory"); /* ICC_EOIR1_EL1 */
}

uint64_t guest_timer_freq(void)
{
	uint64_t f;

	__asm__ volatile("mrs %0, cntfrq_el0" : "=r"(f));
	return f;
}

void guest_timer_start(uint64_t ticks)
{
	__asm__ volatile("msr cntv_tval_el0, %0\n\tmsr cntv_ctl_el0, %1\n\tisb" ::"r"(ticks),
	                 "r"(1ull)
	                 : "memory");
}

void guest_timer_stop(void)
{
	__asm__ volatile("msr cntv_ctl_el0, %0\n\tisb" ::"r"(0ull) : "memory");
}
