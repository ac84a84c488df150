// SPDX-License-Identifier: Apache-2.0
/* The hypercall table: range, duplicates, freeze, lookup. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <sparkler/hypercall.h>
#include <sparkler/log.h>

static uint64_t hc_a(struct spk_vcpu *vcpu, uint64_t nr, const uint64_t args[6], void *opaque)
{
	return nr + 1;
}

static uint64_t hc_b(struct spk_vcpu *vcpu, uint64_t nr, const uint64_t args[6], void *opaque)
{
	return args[0] * 2;
}

static int setup(void **state)
{
	struct spk_hypercall_table *t;

	assert_int_equal(spk_hypercall_table_new(&t), 0);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	spk_hypercall_table_free(*state);
	return 0;
}

static void test_range(void **state)
{
	struct spk_hypercall_table *t = *state;
	int x;

	assert_int_equal(spk_hypercall_register(t, 0xff, "low", hc_a, NULL), -ERANGE);
	assert_non_null(strstr(spk_last_error(), "0xff"));
	assert_int_equal(spk_hypercall_register(t, 0, "zero", hc_a, NULL), -ERANGE);
	assert_int_equal(spk_hypercall_register(t, SPK_HC_UCALL, "ucall", hc_a, NULL), -ERANGE);
	assert_int_equal(spk_hypercall_register(t, SPK_HC_MAX + 1, "high", hc_a, NULL), -ERANGE);
	assert_int_equal(spk_hypercall_register(t, UINT64_MAX, "max", hc_a, NULL), -ERANGE);
	assert_int_equal(spk_hypercall_register(t, 0x100, "first", hc_a, &x), 0);
	assert_int_equal(spk_hypercall_register(t, SPK_HC_MAX, "last", hc_b, NULL), 0);
	assert_null(spk_hypercall_lookup(t, 0xff, NULL, NULL));
	assert_null(spk_hypercall_lookup(t, SPK_HC_MAX + 1, NULL, NULL));
}

static void test_bad_arguments(void **state)
{
	struct spk_hypercall_table *t = *state;

	assert_int_equal(spk_hypercall_register(t, 0x100, NULL, hc_a, NULL), -EINVAL);
	assert_int_equal(spk_hypercall_register(t, 0x100, "nofn", NULL, NULL), -EINVAL);
	assert_int_equal(spk_hypercall_register(NULL, 0x100, "notable", hc_a, NULL), -EINVAL);
	assert_null(spk_hypercall_lookup(t, 0x100, NULL, NULL));
	assert_null(spk_hypercall_lookup(NULL, 0x100, NULL, NULL));
	assert_int_equal(spk_hypercall_table_new(NULL), -EINVAL);
}

static void test_duplicate(void **state)
{
	struct spk_hypercall_table *t = *state;
	void *opaque = NULL;
	const char *name = NULL;
	int a, b;

	assert_int_equal(spk_hypercall_register(t, 0x200, "blk-flush", hc_a, &a), 0);
	assert_int_equal(spk_hypercall_register(t, 0x200, "net-kick", hc_b, &b), -EEXIST);
	assert_non_null(strstr(spk_last_error(), "\"blk-flush\""));
	assert_non_null(strstr(spk_last_error(), "\"net-kick\""));
	/* The first registration is untouched. */
	assert_ptr_equal(spk_hypercall_lookup(t, 0x200, &opaque, &name), hc_a);
	assert_ptr_equal(opaque, &a);
	assert_string_equal(name, "blk-flush");
}

static void test_freeze(void **state)
{
	struct spk_hypercall_table *t = *state;
	void *opaque = NULL;

	assert_int_equal(spk_hypercall_register(t, 0x300, "before", hc_a, t), 0);
	spk_hypercall_freeze(t);
	assert_int_equal(spk_hypercall_register(t, 0x301, "after", hc_a, NULL), -EBUSY);
	assert_non_null(strstr(spk_last_error(), "frozen"));
	/* Frozen also beats a duplicate: nothing changes any more. */
	assert_int_equal(spk_hypercall_register(t, 0x300, "again", hc_a, NULL), -EBUSY);
	spk_hypercall_freeze(t);
	assert_ptr_equal(spk_hypercall_lookup(t, 0x300, &opaque, NULL), hc_a);
	assert_ptr_equal(opaque, t);
	assert_null(spk_hypercall_lookup(t, 0x301, &opaque, NULL));
	assert_null(opaque);
}

static void test_lookup_hit_and_miss(void **state)
{
	struct spk_hypercall_table *t = *state;
	const uint64_t args[6] = {21};
	const char *name = "unchanged";
	void *opaque = (void *)1;
	spk_hypercall_fn fn;

	assert_int_equal(spk_hypercall_register(t, 0x1234, "double", hc_b, NULL), 0);
	fn = spk_hypercall_lookup(t, 0x1234, &opaque, &name);
	assert_ptr_equal(fn, hc_b);
	assert_null(opaque);
	assert_string_equal(name, "double");
	assert_true(fn(NULL, 0x1234, args, opaque) == 42);
	/* Neighbours miss, and clear the outputs. */
	assert_null(spk_hypercall_lookup(t, 0x1233, &opaque, &name));
	assert_null(name);
	assert_null(spk_hypercall_lookup(t, 0x1235, NULL, NULL));
}

static void test_many_out_of_order(void **state)
{
	struct spk_hypercall_table *t = *state;
	static int cookies[1000];
	const char *name;
	void *opaque;
	char want[32];

	/* 1000 numbers, 0x100 + 3k, in a scrambled order (7 is coprime with 1000). */
	for (int i = 0; i < 1000; i++) {
		int k = (i * 7) % 1000;

		snprintf(want, sizeof(want), "hc%d", k);
		assert_int_equal(
		    spk_hypercall_register(t, 0x100 + 3 * (uint64_t)k, want, hc_a, &cookies[k]), 0);
	}
	spk_hypercall_freeze(t);
	for (int k = 0; k < 1000; k++) {
		uint64_t nr = 0x100 + 3 * (uint64_t)k;

		snprintf(want, sizeof(want), "hc%d", k);
		assert_ptr_equal(spk_hypercall_lookup(t, nr, &opaque, &name), hc_a);
		assert_ptr_equal(opaque, &cookies[k]);
		assert_string_equal(name, want);
		assert_null(spk_hypercall_lookup(t, nr + 1, NULL, NULL));
		assert_null(spk_hypercall_lookup(t, nr + 2, NULL, NULL));
	}
}

static void test_names_survive_growth(void **state)
{
	struct spk_hypercall_table *t = *state;
	const char *name = NULL;
	char buf[32];

	assert_int_equal(spk_hypercall_register(t, 0x8000, "early", hc_a, NULL), 0);
	assert_non_null(spk_hypercall_lookup(t, 0x8000, NULL, &name));
	/* Growing the table (before the freeze) must not move the name. */
	for (int i = 0; i < 200; i++) {
		snprintf(buf, sizeof(buf), "n%d", i);
		assert_int_equal(spk_hypercall_register(t, 0x100 + (uint64_t)i, buf, hc_a, NULL),
		                 0);
	}
	assert_string_equal(name, "early");
}

static void test_library_names(void **unused)
{
	static const struct {
		uint64_t nr;
		const char *name;
	} names[] = {
	    {SPK_HC_CPU_ON, "CPU_ON"},
	    {SPK_HC_CPU_OFF, "CPU_OFF"},
	    {SPK_HC_SEND_IPI, "SEND_IPI"},
	    {SPK_HC_SYSTEM_OFF, "SYSTEM_OFF"},
	    {SPK_HC_SYSTEM_RESET, "SYSTEM_RESET"},
	    {SPK_HC_CONSOLE_WRITE, "CONSOLE_WRITE"},
	    {SPK_HC_UCALL, "UCALL"},
	    {SPK_HC_VCPU_ID, "VCPU_ID"},
	    {SPK_HC_FN, "FN"},
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		assert_string_equal(spk_hypercall_name(names[i].nr), names[i].name);
	assert_null(spk_hypercall_name(0));
	assert_null(spk_hypercall_name(10));
	assert_null(spk_hypercall_name(SPK_HC_EMBEDDER_BASE));
	assert_null(spk_hypercall_name(UINT64_MAX));
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_range),
	    T(test_bad_arguments),
	    T(test_duplicate),
	    T(test_freeze),
	    T(test_lookup_hit_and_miss),
	    T(test_many_out_of_order),
	    T(test_names_survive_growth),
	    cmocka_unit_test(test_library_names),
	};

	spk_hypercall_table_free(NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
#undef T
}
