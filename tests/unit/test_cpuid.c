/* SPDX-License-Identifier: Apache-2.0 */
/* The CPUID policy of `sparkler run`: topology, templates, CX16. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kvm/kvm.h"
#include "vmm/vmm.h"

/* A host-like leaf set: everything on, as KVM_GET_SUPPORTED_CPUID might say. */
static uint32_t host_leaves(struct spk_cpuid_entry *e)
{
	uint32_t n = 0;

	e[n++] = (struct spk_cpuid_entry){1, 0, 0, 0x806f8, 0x00000800, 0xffffffff, 0xffffffff};
	for (uint32_t lvl = 1; lvl <= 3; lvl++)
		e[n++] = (struct spk_cpuid_entry){4, lvl - 1, 1, (lvl << 5) | 0xfc000121, 0, 0, 0};
	e[n++] = (struct spk_cpuid_entry){6, 0, 0, 0x77, 2, 9, 0};
	e[n++] = (struct spk_cpuid_entry){7, 0, 1, 0, 0xffffffff, 0xffffffff, 0xffffffff};
	for (uint32_t i = 0; i < 3; i++)
		e[n++] = (struct spk_cpuid_entry){0xb, i, 1, 0xff, 0xff, 0xff, 0xff};
	e[n++] = (struct spk_cpuid_entry){0xd, 0, 1, 0x2e7, 0, 0, 0};
	e[n++] = (struct spk_cpuid_entry){0x80000008, 0, 0, 0x3030, 0, 0xff, 0};
	return n;
}

static void test_topology(void **state)
{
	for (uint32_t ncpus = 1; ncpus <= 8; ncpus *= 2) {
		struct spk_cpu_policy p = {.ncpus = ncpus};
		struct spk_cpuid_entry e[32];
		uint32_t n = host_leaves(e);

		assert_int_equal(spk_cpuid_policy(&p, ncpus - 1, e, &n, 32), 0);
		struct spk_cpuid_entry *l1 = spk_cpuid_find(e, n, 1, 0);
		assert_int_equal((l1->ebx >> 16) & 0xff, ncpus);
		assert_int_equal(!!(l1->edx & (1u << 28)), ncpus > 1); /* HTT */
		assert_true(l1->ecx & (1u << 31));                     /* hypervisor */
		assert_true(l1->ecx & (1u << 13)); /* CX16 stays unless asked */
		struct spk_cpuid_entry *smt = spk_cpuid_find(e, n, 0xb, 0);
		struct spk_cpuid_entry *core = spk_cpuid_find(e, n, 0xb, 1);
		struct spk_cpuid_entry *none = spk_cpuid_find(e, n, 0xb, 2);
		assert_int_equal(smt->ebx, 1);
		assert_int_equal(smt->ecx, 0x100);
		assert_int_equal(core->ebx, ncpus);
		assert_int_equal(core->ecx, 0x201);
		assert_int_equal(1u << core->eax, ncpus); /* x2APIC id shift */
		assert_int_equal(core->edx, ncpus - 1);   /* this vCPU's x2APIC id */
		assert_int_equal(none->ebx, 0);
		assert_int_equal(none->ecx, 2);
		struct spk_cpuid_entry *l3 = spk_cpuid_find(e, n, 4, 2);
		struct spk_cpuid_entry *l1c = spk_cpuid_find(e, n, 4, 0);
		assert_int_equal(l3->eax >> 26, ncpus - 1);
		assert_int_equal((l3->eax >> 14) & 0xfff, ncpus - 1); /* L3 shared by all */
		assert_int_equal((l1c->eax >> 14) & 0xfff, 0);        /* L1 by one */
		assert_int_equal(spk_cpuid_find(e, n, 0x80000008, 0)->ecx & 0xff, ncpus - 1);
	}
}

/* KVM on these hosts lists 0xB and 0x1F with sub-leaf 0 only: the policy
 * adds the core level and the end, or says it has no room. */
static void test_topology_subleaves_added(void **state)
{
	struct spk_cpu_policy p = {.ncpus = 2};
	struct spk_cpuid_entry e[8] = {
		{1, 0, 0, 0xa0671, 0x800, 0, 0},
		{0xb, 0, 1, 0, 0, 0, 1},
		{0x1f, 0, 1, 0, 0, 0, 1},
	};
	uint32_t n = 3;

	assert_int_equal(spk_cpuid_policy(&p, 1, e, &n, 8), 0);
	assert_int_equal(n, 7);
	for (uint32_t leaf = 0xb; leaf <= 0x1f; leaf += 0x1f - 0xb) {
		struct spk_cpuid_entry *core = spk_cpuid_find(e, n, leaf, 1);
		struct spk_cpuid_entry *end = spk_cpuid_find(e, n, leaf, 2);

		assert_non_null(core);
		assert_non_null(end);
		assert_int_equal(core->flags, SPK_CPUID_FLAG_SIGNIFICANT_INDEX);
		assert_int_equal(core->ebx, 2);
		assert_int_equal(core->ecx, 0x201);
		assert_int_equal(core->eax, 1);
		assert_int_equal(core->edx, 1); /* vCPU 1's x2APIC id */
		assert_int_equal(end->ebx, 0);
		assert_int_equal(end->ecx, 2); /* level type 0: the last */
	}
	n = 3;
	assert_int_equal(spk_cpuid_policy(&p, 0, e, &n, 4), -ENOSPC);
}

static void test_minimal_template_and_cx16(void **state)
{
	struct spk_cpu_policy p = {.ncpus = 2, .template = SPK_CPU_TEMPLATE_MINIMAL,
				   .clear_cx16 = true};
	struct spk_cpuid_entry e[32];
	uint32_t n = host_leaves(e);

	assert_int_equal(spk_cpuid_policy(&p, 0, e, &n, 32), 0);
	struct spk_cpuid_entry *l1 = spk_cpuid_find(e, n, 1, 0);
	struct spk_cpuid_entry *l7 = spk_cpuid_find(e, n, 7, 0);
	assert_false(l1->ecx & (1u << 13)); /* CX16 */
	assert_false(l1->ecx & (1u << 5));  /* VMX */
	assert_true(l1->ecx & (1u << 31));  /* still a hypervisor */
	assert_false(l7->ebx & (1u << 16)); /* AVX512F */
	assert_false(l7->ebx & (1u << 11)); /* RTM */
	assert_false(l7->ebx & (1u << 4));  /* HLE */
	assert_false(l7->ebx & (1u << 2));  /* SGX */
	assert_false(l7->ecx & (1u << 3));  /* PKU */
	assert_false(l7->edx & (1u << 24)); /* AMX-TILE */
	assert_true(l7->ebx & (1u << 5));   /* AVX2 stays */
	assert_int_equal(spk_cpuid_find(e, n, 0xd, 0)->eax, 0x7);
	assert_int_equal(spk_cpuid_find(e, n, 6, 0)->eax, 0);
}

static void test_template_names(void **state)
{
	enum spk_cpu_template t;

	assert_int_equal(spk_cpu_template_parse("host", &t), 0);
	assert_int_equal(t, SPK_CPU_TEMPLATE_HOST);
	assert_int_equal(spk_cpu_template_parse("minimal", &t), 0);
	assert_int_equal(t, SPK_CPU_TEMPLATE_MINIMAL);
	assert_int_equal(spk_cpu_template_parse("T2", &t), -1);
	assert_int_equal(spk_cpu_template_parse("", &t), -1);
}

/* The TSC-deadline bit KVM leaves out of KVM_GET_SUPPORTED_CPUID: set when
 * the VM may have it, left alone otherwise, and the policy (both
 * templates, CX16 hidden) keeps it. */
static void test_tsc_deadline(void **state)
{
	for (int tmpl = 0; tmpl < 2; tmpl++) {
		struct spk_cpu_policy p = {
		    .ncpus = 2,
		    .template = tmpl ? SPK_CPU_TEMPLATE_MINIMAL : SPK_CPU_TEMPLATE_HOST,
		    .clear_cx16 = true};
		struct spk_cpuid_entry e[32];
		uint32_t n = host_leaves(e);
		struct spk_cpuid_entry *l1 = spk_cpuid_find(e, n, 1, 0);

		l1->ecx &= ~SPK_CPUID_1_ECX_TSC_DEADLINE; /* as KVM lists it */
		uint32_t before = l1->ecx;
		spk_kvm_cpuid_add_emulated(e, n, false);
		assert_int_equal(l1->ecx, before);
		spk_kvm_cpuid_add_emulated(e, n, true);
		assert_int_equal(l1->ecx, before | SPK_CPUID_1_ECX_TSC_DEADLINE);
		assert_int_equal(spk_cpuid_policy(&p, 1, e, &n, 32), 0);
		l1 = spk_cpuid_find(e, n, 1, 0);
		assert_true(l1->ecx & SPK_CPUID_1_ECX_TSC_DEADLINE);
		assert_false(l1->ecx & (1u << 13));
	}
	/* no leaf 1 at all: nothing to set, nothing touched */
	struct spk_cpuid_entry only7 = {7, 0, 1, 0, 1, 2, 3};
	spk_kvm_cpuid_add_emulated(&only7, 1, true);
	assert_int_equal(only7.ecx, 2);
	spk_kvm_cpuid_add_emulated(NULL, 0, true);
}

/* The PVM command line: what is missing is added once, before " -- ". */
static void test_pvm_cmdline(void **state)
{
	(void)state;
	char added[64], small[8], *out;

	assert_int_equal(spk_pvm_cmdline("console=ttyS0", &out, added, sizeof(added)), 0);
	assert_string_equal(out, "console=ttyS0 noxsave nowatchdog");
	assert_string_equal(added, "noxsave nowatchdog");
	free(out);
	/* present ones stay as the user gave them, with or without a value */
	assert_int_equal(
	    spk_pvm_cmdline("nowatchdog=1 noxsave panic=-1", &out, added, sizeof(added)), 0);
	assert_string_equal(out, "nowatchdog=1 noxsave panic=-1");
	assert_string_equal(added, "");
	free(out);
	/* a longer word with the same start is another option */
	assert_int_equal(spk_pvm_cmdline("noxsaveopt", &out, NULL, 0), 0);
	assert_string_equal(out, "noxsaveopt noxsave nowatchdog");
	free(out);
	/* init's arguments stay last, and an option there does not count */
	assert_int_equal(spk_pvm_cmdline("ro -- noxsave", &out, added, sizeof(added)), 0);
	assert_string_equal(out, "ro noxsave nowatchdog -- noxsave");
	free(out);
	/* empty and NULL command lines; a short `added` is cut, not overrun */
	assert_int_equal(spk_pvm_cmdline("", &out, small, sizeof(small)), 0);
	assert_string_equal(out, "noxsave nowatchdog");
	assert_true(strlen(small) < sizeof(small));
	free(out);
	assert_int_equal(spk_pvm_cmdline(NULL, &out, NULL, 0), 0);
	assert_string_equal(out, "noxsave nowatchdog");
	free(out);
	/* past the kernel's 2048 bytes: refused */
	char *big = malloc(2048);
	assert_non_null(big);
	memset(big, 'a', 2040);
	big[2040] = 0;
	assert_int_equal(spk_pvm_cmdline(big, &out, added, sizeof(added)), -E2BIG);
	assert_null(out);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_topology),
		cmocka_unit_test(test_topology_subleaves_added),
		cmocka_unit_test(test_minimal_template_and_cx16),
		cmocka_unit_test(test_template_names),
		cmocka_unit_test(test_tsc_deadline),
		cmocka_unit_test(test_pvm_cmdline),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
