/* SPDX-License-Identifier: Apache-2.0 */
/* The guest SDK on x86-64: per-CPU setup, hypercall wrappers, CPL3, IDT
 * (the architecture-neutral part: common.c). */
#include <guest.h>

#define MSR_GS_BASE 0xc0000101u

/* Per-CPU data, reached through GS. kernel_rsp must stay first (start.S). */
struct guest_cpu {
	uint64_t kernel_rsp;
	uint32_t id;
	void (*fn)(uint64_t);
	uint64_t arg;
};

static struct guest_cpu cpus[GUEST_MAX_CPUS];
uint8_t guest_kstacks[GUEST_MAX_CPUS][GUEST_STACK_SIZE] __attribute__((aligned(16)));
static uint8_t ustacks[GUEST_MAX_CPUS][GUEST_STACK_SIZE] __attribute__((aligned(16)));
/* CPL0 stacks for traps from CPL3 (TSS rsp0) */
static uint8_t tstacks[GUEST_MAX_CPUS][GUEST_STACK_SIZE] __attribute__((aligned(16)));

struct idt_entry {
	uint16_t off0, sel;
	uint8_t ist, type;
	uint16_t off1;
	uint32_t off2, zero;
};
static struct idt_entry idt[256] __attribute__((aligned(16)));
static guest_irq_fn irq_fns[256];
static bool idt_built;

void guest_cpu_init(uint32_t id);
void guest_boot_main(void) __attribute__((noreturn));
void guest_secondary_main(uint32_t id) __attribute__((noreturn));
void guest_interrupt(uint64_t vector, uint64_t error, struct guest_frame *frame);
uint64_t guest_user_enter(uint64_t (*fn)(uint64_t), uint64_t arg, void *stack_top);
extern char guest_secondary_entry[], guest_isr_table[];
static void load_idt(void);
static uint64_t tss_base(void);

void guest_cpu_init(uint32_t id)
{
	cpus[id].id = id;
	wrmsr(MSR_GS_BASE, (uint64_t)&cpus[id]);
	if (id == 0) /* the boot CPU: CPL3 code gets no port until opened */
		guest_user_deny_ports(0, 0x10000);
}

static uint32_t this_cpu(void)
{
	uint32_t id;

	__asm__ volatile("movl %%gs:%c1, %0" : "=r"(id) : "i"(__builtin_offsetof(struct guest_cpu, id)));
	return id;
}

void guest_boot_main(void)
{
	int rc = main();

	guest_done((uint64_t)(int64_t)rc);
	guest_system_off();
}

void guest_secondary_main(uint32_t id)
{
	cpus[id].fn(cpus[id].arg);
	guest_cpu_off();
}

/* ---- hypercalls ---- */

uint32_t guest_vcpu_id(void)
{
	return (uint32_t)guest_hc0(SPK_HC_VCPU_ID);
}

void guest_system_off(void)
{
	guest_hc0(SPK_HC_SYSTEM_OFF);
	for (;;)
		guest_pause();
}

void guest_system_reset(void)
{
	guest_hc0(SPK_HC_SYSTEM_RESET);
	for (;;)
		guest_pause();
}

void guest_cpu_off(void)
{
	guest_hc0(SPK_HC_CPU_OFF);
	for (;;)
		guest_pause();
}

int64_t guest_cpu_on(uint32_t cpu, void (*fn)(uint64_t), uint64_t arg)
{
	if (cpu >= GUEST_MAX_CPUS)
		return -22;
	cpus[cpu].fn = fn;
	cpus[cpu].arg = arg;
	return (int64_t)guest_hypercall(SPK_HC_CPU_ON, cpu, (uint64_t)guest_secondary_entry, cpu,
					0, 0, 0);
}

int64_t guest_send_ipi(uint32_t cpu, uint8_t vector, uint32_t flags)
{
	return (int64_t)guest_hypercall(SPK_HC_SEND_IPI, cpu, vector, flags, 0, 0, 0);
}

/* ---- CPL3 ---- */

uint64_t guest_run_user(uint64_t (*fn)(uint64_t), uint64_t arg)
{
	return guest_run_user_on(fn, arg, ustacks[this_cpu()] + GUEST_STACK_SIZE);
}

uint64_t guest_run_user_on(uint64_t (*fn)(uint64_t), uint64_t arg, void *stack_top)
{
	uint32_t id = this_cpu();
	uint64_t tss = tss_base();

	/* traps from CPL3, the return gate included, land on this CPU's trap
	 * stack (TSS rsp0, at offset 4) */
	if (tss)
		*(volatile uint64_t *)(tss + 4) = (uint64_t)(tstacks[id] + GUEST_STACK_SIZE);
	load_idt();
	return guest_user_enter(fn, arg, stack_top);
}

/* The TSS the monitor loaded (TR, through the GDT; memory is
 * identity-mapped) and its limit, or 0. */
static uint64_t tss_find(uint32_t *limit)
{
	struct guest_dtr gdtr = guest_sgdt();
	uint16_t tr;

	__asm__ volatile("str %0" : "=r"(tr));
	if (!tr || (uint32_t)(tr & ~7u) + 15 > gdtr.limit)
		return 0;
	const volatile uint64_t *d = (const volatile uint64_t *)(gdtr.base + (tr & ~7u));
	uint64_t lo = d[0], hi = d[1];

	*limit = (uint32_t)((lo & 0xffff) | ((lo >> 32) & 0xf0000));
	return ((lo >> 16) & 0xffffff) | ((lo >> 56) << 24) | (hi << 32);
}

static uint64_t tss_base(void)
{
	uint32_t limit;

	return tss_find(&limit);
}

/* The TSS's I/O bitmap, or NULL when the TSS has no full bitmap. */
static uint8_t *io_bitmap(void)
{
	uint32_t limit = 0;
	uint64_t base = tss_find(&limit);

	if (!base)
		return NULL;
	uint16_t iomap = *(const volatile uint16_t *)(base + 0x66);
	if ((uint32_t)iomap + 8192 > limit + 1u)
		return NULL;
	return (uint8_t *)(base + iomap);
}

/* Bits first..first+count-1 of the bitmap: whole bytes with rep stosb
 * (CPL0 code is emulated on PVM: one instruction, not 65536 loops). */
static int user_ports(uint32_t first, uint32_t count, bool allow)
{
	uint8_t *bitmap = io_bitmap();
	uint32_t p = first, end = first + count;

	if (!bitmap || first > 0xffff || count > 0x10000 - first)
		return -22;
	for (; p < end && p % 8; p++)
		bitmap[p / 8] = allow ? bitmap[p / 8] & (uint8_t) ~(1u << (p % 8))
		                      : bitmap[p / 8] | (uint8_t)(1u << (p % 8));
	if (end - p >= 8) {
		uint8_t *dst = bitmap + p / 8;
		uint64_t n = (end - p) / 8;

		__asm__ volatile("rep stosb"
		                 : "+D"(dst), "+c"(n)
		                 : "a"(allow ? 0 : 0xff)
		                 : "memory");
		p += (end - p) / 8 * 8;
	}
	for (; p < end; p++)
		bitmap[p / 8] = allow ? bitmap[p / 8] & (uint8_t) ~(1u << (p % 8))
		                      : bitmap[p / 8] | (uint8_t)(1u << (p % 8));
	return 0;
}

int guest_user_allow_ports(uint32_t first, uint32_t count)
{
	return user_ports(first, count, true);
}

int guest_user_deny_ports(uint32_t first, uint32_t count)
{
	return user_ports(first, count, false);
}

/* ---- interrupts ---- */

static void build_idt(void)
{
	for (int v = 0; v < 256; v++) {
		uint64_t h = (uint64_t)guest_isr_table + 16 * (uint64_t)v;

		idt[v] = (struct idt_entry){
			.off0 = (uint16_t)h,
			.sel = 0x08,
			.type = 0x8e, /* present, DPL0, 64-bit interrupt gate */
			.off1 = (uint16_t)(h >> 16),
			.off2 = (uint32_t)(h >> 32),
		};
	}
	idt_built = true;
}

static void load_idt(void)
{
	struct guest_dtr idtr = {sizeof(idt) - 1, (uint64_t)idt};

	if (!idt_built)
		build_idt();
	__asm__ volatile("lidt %0" ::"m"(idtr) : "memory");
}

void guest_user_abort(struct guest_frame *frame)
{
	extern char guest_user_aborted[];

	if ((frame->cs & 3) == 3)
		frame->rip = (uint64_t)guest_user_aborted;
}

void guest_irq_set(uint8_t vector, guest_irq_fn fn)
{
	irq_fns[vector] = fn;
	load_idt();
}

void guest_irq_set_user(uint8_t vector)
{
	if (!idt_built)
		build_idt();
	idt[vector].type = 0xee; /* present, DPL3, 64-bit interrupt gate */
}

void guest_interrupt(uint64_t vector, uint64_t error, struct guest_frame *frame)
{
	if (irq_fns[vector & 0xff]) {
		irq_fns[vector & 0xff](vector, error, frame);
		return;
	}
	guest_printf("guest: unexpected interrupt %u (error 0x%lx) at rip 0x%lx on cpu %u\n",
		     (unsigned)vector, error, frame->rip, this_cpu());
	guest_assert_fail("no unexpected interrupts", __FILE__, __LINE__, vector, frame->rip);
}
