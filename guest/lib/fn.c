/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Function sandboxes, the guest's kernel side (guest_fn.h): the main() of
 * every function guest, exception reports, and the system calls musl
 * makes. Built with -mgeneral-regs-only like the rest of the SDK's CPL0
 * code (kernel-mode code is emulated on PVM hosts, and its emulator has no
 * SSE); fn_user.c is the CPL3 side.
 *
 * System calls. musl inlines `syscall`; the SDK points LSTAR at
 * guest_fn_syscall_entry. The entry switches to its own stack (musl code
 * may keep data in the red zone below rsp) and returns with iretq, not
 * sysret: on PVM hosts the code syscall enters keeps CPL3 (sysret there is
 * a #GP), and iretq returns correctly from either level. For the same
 * reason the thread pointer is set with wrfsbase (CR4.FSGSBASE, set at
 * boot where CPUID has it), which works at any level; wrmsr is the
 * fallback where the CPU has no FSGSBASE (and syscall really is CPL0).
 */
#include <guest_fn.h>

#define MSR_STAR      0xc0000081u
#define MSR_LSTAR     0xc0000082u
#define MSR_FMASK     0xc0000084u
#define MSR_FS_BASE   0xc0000100u
#define CR4_FSGSBASE  (1ull << 16)
#define FN_STACK_SIZE (256u << 10)
#define PAGE          4096ull

#define E_BADF  9
#define E_NOMEM 12
#define E_NODEV 19
#define E_INVAL 22
#define E_NOTTY 25
#define E_NOSYS 38

static uint8_t fn_stack[FN_STACK_SIZE] __attribute__((aligned(16)));
uint8_t guest_fn_sc_stack[16384] __attribute__((aligned(16)));
uint64_t guest_fn_sc_user_rsp;
static bool have_fsgsbase;
extern char _end[];
uint64_t guest_fn_user_main(uint64_t unused); /* fn_user.c */
int64_t guest_fn_syscall(uint64_t nr, uint64_t *a);

/* rdi rsi rdx r10 r8 r9 are the arguments and, like everything but rax,
 * rcx and r11, must come back unchanged: saved around the C handler. */
__asm__(".text\n"
        ".globl guest_fn_syscall_entry\n"
        "guest_fn_syscall_entry:\n"
        "	mov %rsp, guest_fn_sc_user_rsp(%rip)\n"
        "	lea guest_fn_sc_stack+16384(%rip), %rsp\n"
        "	push %rcx\n"
        "	push %r11\n"
        "	push %r9\n"
        "	push %r8\n"
        "	push %r10\n"
        "	push %rdx\n"
        "	push %rsi\n"
        "	push %rdi\n"
        "	mov %rax, %rdi\n"
        "	mov %rsp, %rsi\n"
        "	call guest_fn_syscall\n"
        "	pop %rdi\n"
        "	pop %rsi\n"
        "	pop %rdx\n"
        "	pop %r10\n"
        "	pop %r8\n"
        "	pop %r9\n"
        "	pop %r11\n"
        "	pop %rcx\n"
        "	pushq $0x1b\n" /* ss: user data */
        "	pushq guest_fn_sc_user_rsp(%rip)\n"
        "	push %r11\n"   /* rflags as syscall saved them */
        "	pushq $0x23\n" /* cs: user code */
        "	push %rcx\n"   /* rip after the syscall */
        "	iretq\n");
extern char guest_fn_syscall_entry[];

static uint64_t fn_hc(uint64_t op, uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
	return guest_hypercall(SPK_HC_FN, op, a, b, c, d, e);
}

/* ---- exceptions: reported to the host, which ends the call ---- */

static void fault(uint64_t vector, uint64_t error, struct guest_frame *frame)
{
	uint64_t cr2;

	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	fn_hc(SPK_FN_OP_FAULT, vector, error, frame->rip, cr2, frame->cs);
	for (;;)
		guest_pause();
}

/* ---- the heap: brk grows up from _end, mmap down from the top of RAM ---- */

static uint64_t brk_lo, brk_cur, brk_max, mmap_lo, mmap_fresh, ram_top;

static void zero(uint64_t lo, uint64_t hi)
{
	if (hi > lo)
		memset((void *)lo, 0, hi - lo);
}

/* Pages handed out before may hold old data: zero [lo, hi) where it
 * meets what brk or mmap ever gave out. */
static void zero_reused(uint64_t lo, uint64_t hi)
{
	zero(lo, hi < brk_max ? hi : brk_max);
	zero(lo > mmap_fresh ? lo : mmap_fresh, hi);
}

static int64_t sys_brk(uint64_t want)
{
	if (want < brk_lo || want > mmap_lo)
		return (int64_t)brk_cur;
	if (want > brk_cur)
		zero_reused(brk_cur, want);
	brk_cur = want;
	if (want > brk_max)
		brk_max = want;
	return (int64_t)want;
}

static int64_t sys_mmap(uint64_t len, uint64_t flags, int64_t fd)
{
	if (!(flags & 0x20) || fd != -1) /* MAP_ANONYMOUS only */
		return -E_NODEV;
	if (flags & 0x10) /* MAP_FIXED */
		return -E_NOMEM;
	if (!len || len > ram_top)
		return -E_INVAL;
	len = (len + PAGE - 1) & ~(PAGE - 1);
	if (mmap_lo < len || mmap_lo - len < (brk_cur + PAGE - 1) / PAGE * PAGE)
		return -E_NOMEM;
	uint64_t lo = mmap_lo - len;

	zero_reused(lo, mmap_lo);
	mmap_lo = lo;
	if (lo < mmap_fresh)
		mmap_fresh = lo;
	return (int64_t)lo;
}

static int64_t sys_munmap(uint64_t addr, uint64_t len)
{
	len = (len + PAGE - 1) & ~(PAGE - 1);
	if (addr == mmap_lo && len <= ram_top - mmap_lo) /* the lowest mapping: give it back */
		mmap_lo += len;
	return 0; /* others stay allocated until the next reset */
}

/* ---- console ---- */

static int64_t sys_write(int64_t fd, const char *buf, uint64_t len)
{
	if (fd != 1 && fd != 2)
		return -E_BADF;
	for (uint64_t done = 0; done < len;) {
		uint64_t n = len - done < SPK_HC_CONSOLE_MAX ? len - done : SPK_HC_CONSOLE_MAX;
		int64_t r = (int64_t)guest_hypercall(SPK_HC_CONSOLE_WRITE, (uint64_t)buf + done, n,
		                                     0, 0, 0, 0);
		if (r < 0)
			return done ? (int64_t)done : r;
		done += n;
	}
	return (int64_t)len;
}

struct iov {
	const char *base;
	uint64_t len;
};

static int64_t sys_writev(int64_t fd, const struct iov *iov, int64_t n)
{
	int64_t total = 0;

	if (n < 0 || n > 1024)
		return -E_INVAL;
	for (int64_t i = 0; i < n; i++) {
		int64_t r = sys_write(fd, iov[i].base, iov[i].len);
		if (r < 0)
			return total ? total : r;
		total += r;
	}
	return total;
}

static int64_t sys_clock_gettime(uint64_t clock, uint64_t *ts)
{
	if (clock != 0 && clock != 1 && clock != 4 &&
	    clock != 7) /* REALTIME, MONOTONIC(_RAW), BOOTTIME */
		return -E_INVAL;
	uint64_t ns = fn_hc(SPK_FN_OP_TIME, clock == 0 ? 0 : 1, 0, 0, 0, 0);

	ts[0] = ns / 1000000000ull;
	ts[1] = ns % 1000000000ull;
	return 0;
}

static int64_t sys_arch_prctl(uint64_t code, uint64_t addr)
{
	switch (code) {
	case 0x1002: /* ARCH_SET_FS */
		if (have_fsgsbase)
			__asm__ volatile("wrfsbase %0" ::"r"(addr));
		else
			wrmsr(MSR_FS_BASE, addr);
		return 0;
	case 0x1003: /* ARCH_GET_FS */
		if (have_fsgsbase)
			__asm__ volatile("rdfsbase %0" : "=r"(*(uint64_t *)addr));
		else
			*(uint64_t *)addr = rdmsr(MSR_FS_BASE);
		return 0;
	default:
		return -E_INVAL;
	}
}

int64_t guest_fn_syscall(uint64_t nr, uint64_t *a)
{
	switch (nr) {
	case 1: /* write */
		return sys_write((int64_t)a[0], (const char *)a[1], a[2]);
	case 20: /* writev */
		return sys_writev((int64_t)a[0], (const struct iov *)a[1], (int64_t)a[2]);
	case 9: /* mmap */
		return sys_mmap(a[1], a[3], (int64_t)a[4]);
	case 11: /* munmap */
		return sys_munmap(a[0], a[1]);
	case 12: /* brk */
		return sys_brk(a[0]);
	case 10: /* mprotect: all guest memory is read-write */
	case 28: /* madvise */
	case 14: /* rt_sigprocmask */
		return 0;
	case 16: /* ioctl: fds 1 and 2 answer TIOCGWINSZ as a terminal, so stdio
	          * flushes each line before a reset could drop it */
		if ((a[0] == 1 || a[0] == 2) && a[1] == 0x5413) {
			memset((void *)a[2], 0, 8);
			return 0;
		}
		return -E_NOTTY;
	case 228: /* clock_gettime */
		return sys_clock_gettime(a[0], (uint64_t *)a[1]);
	case 158: /* arch_prctl */
		return sys_arch_prctl(a[0], a[1]);
	case 218: /* set_tid_address */
	case 186: /* gettid */
	case 39:  /* getpid */
		return 1;
	case 60:  /* exit */
	case 231: /* exit_group */
		fn_hc(SPK_FN_OP_EXIT, a[0], 0, 0, 0, 0);
		for (;;)
			guest_pause();
	default:
		return -E_NOSYS;
	}
}

/* ---- boot ---- */

static bool cpu_has_fsgsbase(void)
{
	uint32_t a = 7, b, c = 0, d;

	__asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
	return b & 1;
}

int main(void)
{
	uint64_t cr4;

	/* syscall: kernel CS 0x08; sysret's base 0x10 (unused: we iretq);
	 * IF, TF, DF cleared on entry */
	wrmsr(MSR_STAR, (0x10ull << 48) | (0x08ull << 32));
	wrmsr(MSR_LSTAR, (uint64_t)guest_fn_syscall_entry);
	wrmsr(MSR_FMASK, 0x200 | 0x100 | 0x400);
	have_fsgsbase = cpu_has_fsgsbase();
	if (have_fsgsbase) {
		__asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
		__asm__ volatile("mov %0, %%cr4" ::"r"(cr4 | CR4_FSGSBASE));
	}
	ram_top = fn_hc(SPK_FN_OP_MEMSIZE, 0, 0, 0, 0, 0) & ~(PAGE - 1);
	brk_lo = brk_cur = brk_max = ((uint64_t)_end + PAGE - 1) & ~(PAGE - 1);
	mmap_lo = mmap_fresh = ram_top > brk_lo ? ram_top : brk_lo;
	guest_user_allow_ports(SPK_HC_PORT, 4);
	for (uint8_t v = 0; v < 32; v++)
		guest_irq_set(v, fault);
	/* returns only when the program's initialisation failed */
	return (int)guest_run_user_on(guest_fn_user_main, 0, fn_stack + FN_STACK_SIZE);
}
