/* SPDX-License-Identifier: Apache-2.0 */
/* The guest SDK: per-CPU setup, hypercall wrappers, console, ucall, CPL3, IDT. */
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

/* ---- console ---- */

void guest_write(const char *s, size_t len)
{
	guest_hypercall(SPK_HC_CONSOLE_WRITE, (uint64_t)s, len, 0, 0, 0, 0);
}

void guest_puts(const char *s)
{
	guest_write(s, strlen(s));
}

struct out {
	char *buf;
	size_t size, len;
};

static void put(struct out *o, char c)
{
	if (o->len + 1 < o->size)
		o->buf[o->len] = c;
	o->len++;
}

static void put_num(struct out *o, uint64_t v, unsigned base, bool upper, bool neg, int width,
		    char pad)
{
	char tmp[24];
	int n = 0;
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";

	do {
		tmp[n++] = digits[v % base];
		v /= base;
	} while (v);
	if (neg)
		tmp[n++] = '-';
	for (int i = n; i < width; i++)
		put(o, pad);
	while (n)
		put(o, tmp[--n]);
}

static uint64_t arg_u(va_list *ap, int lng)
{
	return lng ? va_arg(*ap, uint64_t) : va_arg(*ap, unsigned int);
}

static int64_t arg_i(va_list *ap, int lng)
{
	return lng ? va_arg(*ap, int64_t) : va_arg(*ap, int);
}

int guest_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct out o = {buf, size, 0};
	va_list aq;

	va_copy(aq, ap);
	for (const char *p = fmt; *p; p++) {
		if (*p != '%') {
			put(&o, *p);
			continue;
		}
		char pad = ' ';
		int width = 0, lng = 0;
		p++;
		if (*p == '0') {
			pad = '0';
			p++;
		}
		while (*p >= '0' && *p <= '9')
			width = width * 10 + (*p++ - '0');
		while (*p == 'l' || *p == 'z') {
			lng = 1;
			p++;
		}
		switch (*p) {
		case 'd':
		case 'i': {
			int64_t v = arg_i(&aq, lng);
			put_num(&o, v < 0 ? -(uint64_t)v : (uint64_t)v, 10, false, v < 0, width, pad);
			break;
		}
		case 'u':
			put_num(&o, arg_u(&aq, lng), 10, false, false, width, pad);
			break;
		case 'x':
		case 'X':
			put_num(&o, arg_u(&aq, lng), 16, *p == 'X', false, width, pad);
			break;
		case 'p':
			put(&o, '0');
			put(&o, 'x');
			put_num(&o, (uint64_t)va_arg(aq, void *), 16, false, false, width, pad);
			break;
		case 's': {
			const char *s = va_arg(aq, const char *);
			for (s = s ? s : "(null)"; *s; s++)
				put(&o, *s);
			break;
		}
		case 'c':
			put(&o, (char)va_arg(aq, int));
			break;
		case '%':
			put(&o, '%');
			break;
		case '\0':
			p--;
			break;
		default:
			put(&o, '%');
			put(&o, *p);
			break;
		}
	}
	va_end(aq);
	if (size)
		buf[o.len < size ? o.len : size - 1] = '\0';
	return (int)o.len;
}

int guest_snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int n = guest_vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

void guest_printf(const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	int n = guest_vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	guest_write(buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/* ---- ucall ---- */

void guest_ucall(uint64_t type, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4)
{
	guest_hypercall(SPK_HC_UCALL, type, a0, a1, a2, a3, a4);
}

void guest_done(uint64_t value)
{
	guest_ucall(SPK_UCALL_DONE, value, 0, 0, 0, 0);
}

void guest_sync(uint64_t stage, uint64_t value)
{
	guest_ucall(SPK_UCALL_SYNC, stage, value, 0, 0, 0);
}

void guest_assert_fail(const char *expr, const char *file, int line, uint64_t a, uint64_t b)
{
	guest_ucall(SPK_UCALL_ASSERT, (uint64_t)expr, (uint64_t)file, (uint64_t)line, a, b);
	guest_system_off();
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

/* ---- small libc (the compiler may call these) ---- */

void *memset(void *d, int c, size_t n)
{
	uint8_t *p = d;

	while (n--)
		*p++ = (uint8_t)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	uint8_t *a = d;
	const uint8_t *b = s;

	while (n--)
		*a++ = *b++;
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *x = a, *y = b;

	for (; n; n--, x++, y++)
		if (*x != *y)
			return *x - *y;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}
