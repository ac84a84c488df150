/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CPUID as the embedder's policy hook left it (tests/guest/guest_tests.c,
 * case cpuid): leaf 0x40000000's signature and leaf 1's ECX, read at CPL0
 * and at CPL3, each reported as ucall SYNC (stage, ebx, ecx, edx, leaf-1
 * ecx): stage 1 from CPL0, stage 2 from CPL3.
 */
#include <guest.h>

struct regs4 {
	uint32_t a, b, c, d;
};

static struct regs4 cpuid(uint32_t leaf)
{
	struct regs4 r;

	__asm__ volatile("cpuid" : "=a"(r.a), "=b"(r.b), "=c"(r.c), "=d"(r.d) : "a"(leaf), "c"(0));
	return r;
}

static struct regs4 user_sig, user_leaf1;

static uint64_t at_user(uint64_t unused)
{
	user_sig = cpuid(0x40000000);
	user_leaf1 = cpuid(1);
	return 0;
}

int main(void)
{
	struct regs4 sig = cpuid(0x40000000), leaf1 = cpuid(1);

	guest_ucall(SPK_UCALL_SYNC, 1, sig.b, sig.c, sig.d, leaf1.c);
	guest_run_user(at_user, 0);
	guest_ucall(SPK_UCALL_SYNC, 2, user_sig.b, user_sig.c, user_sig.d, user_leaf1.c);
	return 0;
}
