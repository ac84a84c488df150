/* SPDX-License-Identifier: Apache-2.0 */
/* The guest SDK: per-CPU setup, hypercall wrappers, console, ucall, CPL3, IDT. */
#include <guest.h>

#define MSR_STAR 0xc0000081u
#define MSR_LSTAR 0xc0000082u
#define MSR_FMASK 0xc0000084u
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
extern char guest_syscall_entry[], guest_secondary_entry[], guest_isr_table[];

void guest_cpu_init(uint32_t id)
{
	cpus[id].id = id;
	wrmsr(MSR_GS_BASE, (uint64_t)&cpus[id]);
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
	uint32_t id = this_cpu();

	/* syscall lands at CPL0 with CS 0x08/SS 0x10; interrupts off there */
	wrmsr(MSR_STAR, (uint64_t)0x08 << 32 | (uint64_t)0x10 << 48);
	wrmsr(MSR_LSTAR, (uint64_t)guest_syscall_entry);
	wrmsr(MSR_FMASK, 0x200);
	return guest_user_enter(fn, arg, ustacks[id] + GUEST_STACK_SIZE);
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

void guest_irq_set(uint8_t vector, guest_irq_fn fn)
{
	struct __attribute__((packed)) {
		uint16_t limit;
		uint64_t base;
	} idtr = {sizeof(idt) - 1, (uint64_t)idt};

	if (!idt_built)
		build_idt();
	irq_fns[vector] = fn;
	__asm__ volatile("lidt %0" ::"m"(idtr) : "memory");
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
