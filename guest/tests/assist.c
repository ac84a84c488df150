/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Instruction assists (include/sparkler/assist.h): every assisted
 * instruction runs at CPL0, where on PVM hosts KVM's emulator refuses it
 * and the library completes it, and then the same code runs natively at
 * CPL3 (guest_run_user); the two sets of results must agree.
 *
 *   popcnt  64- and 32-bit forms and REX registers on 0, 1, all ones and
 *           patterns: result and the six arithmetic flags (all set before)
 *   clac/stac  RFLAGS.AC after each (at CPL3 the same bit through popf,
 *           and clac itself must raise #UD there)
 *   fwait   no register or flag changes
 *   int3    #BP with the frame's RIP just past it (a DPL3 gate for CPL3)
 *   ldmxcsr/stmxcsr  through disp8(%rsp), base+index*4+disp32, RIP-relative
 *           and a REX base register; a page that is not present (#PF, CR2
 *           the address), a non-canonical address (#GP 0), reserved MXCSR
 *           bits (#GP 0)
 * Then, on PVM hosts only (the host answers the first SYNC with 1 there),
 * ldmxcsr from an address the page tables map but that is not guest RAM:
 * #GP 0, the assist's answer (elsewhere it is an MMIO read).
 *
 * There is one CPL3 run and it comes last, and on PVM hosts it takes no
 * faults: there a second guest_run_user() after the first one returns
 * triple-faults (the guest's CPL0 code then runs in PVM's user mode and
 * its wrmsr faults), and so does an exception raised at CPL3 (#UD, #BP,
 * #PF measured). On PVM the faults of the CPL0 run are checked against
 * the values the SDM gives; elsewhere against the native CPL3 run too.
 *
 * Ucalls: SYNC 1 (checks so far; the reply says whether to try the hole),
 * SYNC 2 (all checks), then DONE.
 */
#include <guest.h>

#define ARITH 0x8d5ull /* CF PF AF ZF SF OF */
#define AC    (1ull << 18)
#define NVALS 7
#define NMX   4

static unsigned checks;

#define SAME(a, b)                                                                                 \
	do {                                                                                       \
		GUEST_ASSERT_EQ(a, b);                                                             \
		checks++;                                                                          \
	} while (0)

/* ---- faults: the handler records them and resumes at `resume` ---- */
static volatile uint64_t fault_vec, fault_err, fault_rip, fault_cr2;
static volatile uint64_t resume __attribute__((used));

static void on_fault(uint64_t vector, uint64_t error, struct guest_frame *frame)
{
	fault_vec = vector;
	fault_err = error;
	fault_rip = frame->rip;
	if (vector == 14)
		__asm__ volatile("mov %%cr2, %0" : "=r"(fault_cr2));
	frame->rip = resume;
}

/* What one run (CPL0 or CPL3) found. */
struct results {
	uint64_t pc64[NVALS], pf64[NVALS], pc32[NVALS], pf32[NVALS], pcr10[NVALS];
	uint64_t ac_set, ac_clear, clac_vec;
	uint64_t fwait_diff;
	uint64_t int3_vec, int3_rip_ok;
	uint64_t mx[NMX];
	uint64_t pf_vec, pf_cr2, pf_present, gp_vec, gp_err, rsv_vec, rsv_err;
};

static struct results kern, user;

static const uint64_t vals[NVALS] = {0,
                                     1,
                                     ~0ull,
                                     0x8000000000000000ull,
                                     0x00000000ffffffffull,
                                     0xffffffff00000000ull,
                                     0x5555aaaa0f0f7777ull};

/* ---- popcnt ---- */
static void run_popcnt(struct results *r, unsigned i)
{
	uint64_t v = vals[i], res, f, pre = 0x2 | ARITH;

	__asm__ volatile("push %[pre]; popf; popcnt %[v], %[r]; pushf; pop %[f]"
	                 : [r] "=&r"(res), [f] "=&r"(f)
	                 : [v] "r"(v), [pre] "r"(pre)
	                 : "cc");
	r->pc64[i] = res;
	r->pf64[i] = f & ARITH;
	res = 0xdeadbeefcafef00dull; /* the 32-bit form zero-extends */
	__asm__ volatile("push %[pre]; popf; popcnt %k[v], %k[r]; pushf; pop %[f]"
	                 : [r] "+r"(res), [f] "=&r"(f)
	                 : [v] "r"(v), [pre] "r"(pre)
	                 : "cc");
	r->pc32[i] = res;
	r->pf32[i] = f & ARITH;
	__asm__ volatile("mov %[v], %%r9; popcnt %%r9, %%r10; mov %%r10, %[r]"
	                 : [r] "=r"(res)
	                 : [v] "r"(v)
	                 : "r9", "r10", "cc");
	r->pcr10[i] = res;
}

/* ---- clac / stac ---- */
static uint64_t ac_kernel(bool set)
{
	uint64_t f;

	if (set)
		__asm__ volatile("stac; pushf; pop %0" : "=r"(f)::"cc");
	else
		__asm__ volatile("clac; pushf; pop %0" : "=r"(f)::"cc");
	return f & AC;
}

static uint64_t ac_user(bool set)
{
	uint64_t f;

	/* at CPL3 AC is set through popf: the architectural effect of stac */
	__asm__ volatile("pushf; pop %0; and %2, %0; or %1, %0; push %0; popf; pushf; pop %0"
	                 : "=&r"(f)
	                 : "r"(set ? AC : 0), "r"(~AC)
	                 : "cc");
	/* leave AC clear: alignment checks at CPL3 would fire otherwise */
	__asm__ volatile("pushf; andq %0, (%%rsp); popf" ::"r"(~AC) : "cc");
	return f & AC;
}

static uint64_t clac_fault(void)
{
	fault_vec = 0;
	__asm__ volatile("lea 1f(%%rip), %%rax; mov %%rax, resume(%%rip); clac; 1:" ::
	                     : "rax", "memory");
	return fault_vec;
}

/* ---- fwait ---- */
static uint64_t run_fwait(uint64_t v)
{
	uint64_t a = v, b = ~v, f0, f1;

	__asm__ volatile("pushf; pop %2; fwait; pushf; pop %3"
	                 : "+r"(a), "+r"(b), "=&r"(f0), "=&r"(f1)
	                 :
	                 : "cc");
	return (a ^ v) | (b ^ ~v) | (f0 ^ f1);
}

/* ---- int3 ---- */
static void run_int3(struct results *r)
{
	uint64_t after;

	fault_vec = 0;
	__asm__ volatile("lea 1f(%%rip), %0; mov %0, resume(%%rip); int3; 1:"
	                 : "=&r"(after)
	                 :
	                 : "memory");
	r->int3_vec = fault_vec;
	r->int3_rip_ok = fault_rip == after;
}

/* ---- ldmxcsr / stmxcsr ---- */
struct mx {
	uint32_t pad[3];
	uint32_t slot[4];
};
static struct mx mxbuf __attribute__((aligned(64)));
static uint32_t riprel __attribute__((used));
static uint32_t bad_mxcsr = 0x10000; /* bit 16: reserved */

/* Load v through four addressing forms, storing back each time. */
static uint64_t mx_forms(uint32_t v)
{
	uint32_t out[4] = {0};
	uint64_t idx = 2;

	/* disp8(%rsp) (no red zone: guests are built without one) */
	__asm__ volatile("sub $16, %%rsp; movl %k1, 4(%%rsp); ldmxcsr 4(%%rsp); stmxcsr (%%rsp);"
	                 "movl (%%rsp), %k0; add $16, %%rsp"
	                 : "=r"(out[0])
	                 : "r"(v)
	                 : "memory");
	/* base + index*4 + disp32: slot[2] */
	mxbuf.slot[2] = v ^ 0x40; /* DAZ toggled: another value */
	__asm__ volatile("ldmxcsr 0x0c(%1,%2,4); stmxcsr 0x0c(%1,%2,4)"
	                 :
	                 : "m"(mxbuf), "r"(&mxbuf), "r"(idx)
	                 : "memory");
	out[1] = mxbuf.slot[2];
	/* RIP-relative */
	riprel = v;
	__asm__ volatile("ldmxcsr riprel(%%rip); stmxcsr riprel(%%rip)" ::: "memory");
	out[2] = riprel;
	/* (%r11), stored to 4(%r11) */
	mxbuf.slot[0] = v;
	__asm__ volatile("mov %1, %%r11; ldmxcsr (%%r11); stmxcsr 4(%%r11); mov 4(%%r11), %0"
	                 : "=r"(out[3])
	                 : "r"(&mxbuf.slot[0])
	                 : "r11", "memory");
	return (uint64_t)(out[0] & 0xffff) | (uint64_t)(out[1] & 0xffff) << 16 |
	       (uint64_t)(out[2] & 0xffff) << 32 | (uint64_t)(out[3] & 0xffff) << 48;
}

/* ldmxcsr from addr: the fault vector (0: none); error and cr2 in the globals */
static uint64_t mx_fault(uint64_t addr)
{
	fault_vec = 0;
	fault_cr2 = 0;
	__asm__ volatile("lea 1f(%%rip), %%rax; mov %%rax, resume(%%rip); ldmxcsr (%0); 1:"
	                 :
	                 : "r"(addr)
	                 : "rax", "memory");
	return fault_vec;
}

static void run_mxcsr(struct results *r, bool faults)
{
	static const uint32_t mxvals[NMX] = {0x1f80, 0x9fc0, 0x7f80, 0x0000};
	uint32_t dflt = 0x1f80;

	for (unsigned i = 0; i < NMX; i++)
		r->mx[i] = mx_forms(mxvals[i]);
	__asm__ volatile("ldmxcsr %0" ::"m"(dflt)); /* the default again */
	if (!faults)
		return;

	uint64_t absent = 0x400000000000ull + 0x123; /* no PML4 entry */
	r->pf_vec = mx_fault(absent);
	r->pf_cr2 = fault_cr2;
	r->pf_present = fault_err & 1;
	r->gp_vec = mx_fault(0x8000000000000000ull);
	r->gp_err = fault_err;
	r->rsv_vec = mx_fault((uint64_t)&bad_mxcsr);
	r->rsv_err = fault_err;
}

/* Faults at CPL3 are taken there too (not on PVM hosts, see above). */
static bool user_faults;

/* Everything once, at the CPL the caller runs at (1: CPL3). */
static uint64_t run_all(uint64_t at_user)
{
	struct results *r = at_user ? &user : &kern;
	bool faults = !at_user || user_faults;

	for (unsigned i = 0; i < NVALS; i++)
		run_popcnt(r, i);
	if (at_user) {
		r->ac_set = ac_user(true);
		r->ac_clear = ac_user(false);
		r->clac_vec = faults ? clac_fault() : 6;
	} else {
		r->ac_set = ac_kernel(true);
		r->ac_clear = ac_kernel(false);
		r->clac_vec = 6; /* what CPL3 gets for clac: #UD */
	}
	r->fwait_diff = run_fwait(0x1234);
	if (faults)
		run_int3(r);
	run_mxcsr(r, faults);
	return 0;
}

static uint64_t sw_popcount(uint64_t v)
{
	uint64_t n = 0;

	for (; v; v &= v - 1)
		n++;
	return n;
}

static void check_kernel(void)
{
	for (unsigned i = 0; i < NVALS; i++) {
		SAME(kern.pc64[i], sw_popcount(vals[i]));
		SAME(kern.pf64[i], vals[i] ? 0 : 0x40);
	}
	SAME(kern.ac_set, AC);
	SAME(kern.ac_clear, 0);
	SAME(kern.fwait_diff, 0);
	SAME(kern.int3_vec, 3);
	SAME(kern.int3_rip_ok, 1);
	SAME(kern.mx[0] & 0xffff, 0x1f80);
	SAME(kern.pf_vec, 14);
	SAME(kern.pf_cr2, 0x400000000000ull + 0x123);
	SAME(kern.pf_present, 0);
	SAME(kern.gp_vec, 13);
	SAME(kern.gp_err, 0);
	SAME(kern.rsv_vec, 13);
	SAME(kern.rsv_err, 0);
}

static void compare(void)
{
	for (unsigned i = 0; i < NVALS; i++) {
		SAME(kern.pc64[i], user.pc64[i]);
		SAME(kern.pf64[i], user.pf64[i]);
		SAME(kern.pc32[i], user.pc32[i]);
		SAME(kern.pf32[i], user.pf32[i]);
		SAME(kern.pcr10[i], user.pcr10[i]);
	}
	SAME(kern.ac_set, user.ac_set);
	SAME(kern.ac_clear, user.ac_clear);
	SAME(kern.fwait_diff, user.fwait_diff);
	for (unsigned i = 0; i < NMX; i++)
		SAME(kern.mx[i], user.mx[i]);
	if (!user_faults)
		return; /* the faults were checked against the SDM's values only */
	SAME(kern.clac_vec, user.clac_vec); /* 6: #UD natively at CPL3 */
	SAME(kern.int3_vec, user.int3_vec);
	SAME(kern.int3_rip_ok, user.int3_rip_ok);
	SAME(kern.pf_vec, user.pf_vec);
	SAME(kern.pf_cr2, user.pf_cr2);
	SAME(kern.pf_present, user.pf_present);
	SAME(kern.gp_vec, user.gp_vec);
	SAME(kern.gp_err, user.gp_err);
	SAME(kern.rsv_vec, user.rsv_vec);
	SAME(kern.rsv_err, user.rsv_err);
}

int main(void)
{
	guest_irq_set(3, on_fault);
	guest_irq_set_user(3); /* int3 from CPL3 reaches the handler, not #GP */
	guest_irq_set(6, on_fault);
	guest_irq_set(13, on_fault);
	guest_irq_set(14, on_fault);

	run_all(0);
	check_kernel();
	uint64_t try_hole = guest_hypercall(SPK_HC_UCALL, SPK_UCALL_SYNC, 1, checks, 0, 0, 0);
	user_faults = !try_hole;
	if (try_hole) {
		SAME(mx_fault(0xd0000000ull), 13);
		SAME(fault_err, 0);
	}
	guest_run_user(run_all, 1);
	compare();
	guest_sync(2, checks);
	return 0;
}
