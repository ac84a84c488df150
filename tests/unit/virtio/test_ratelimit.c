/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The token buckets of the rate limiters (src/virtio/ratelimit.c) with a
 * clock of our own: every time is a number we pass in, so nothing here
 * depends on how fast the machine is.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "virtio/ratelimit.h"

#define MS 1000000ull

static struct spk_tbucket bucket(uint64_t size, uint64_t burst, uint64_t refill_ms)
{
	const struct spk_token_bucket cfg = {size, burst, refill_ms};
	struct spk_tbucket b;

	spk_tbucket_init(&b, &cfg, 1000 * MS);
	return b;
}

/* Full at the start; spending it all stops it; it refills at size per refill time. */
static void test_refill(void **state)
{
	struct spk_tbucket b = bucket(1000, 0, 100); /* 10 tokens per ms */

	(void)state;
	assert_true(spk_tbucket_ready(&b));
	spk_tbucket_spend(&b, 1000);
	assert_false(spk_tbucket_ready(&b));
	assert_int_equal(spk_tbucket_wait_ns(&b), MS / 10); /* one token: 0.1 ms */
	spk_tbucket_refill(&b, 1000 * MS + 50 * MS);
	assert_int_equal(b.budget, 500);
	spk_tbucket_refill(&b, 1000 * MS + 10000 * MS); /* long after: full, not more */
	assert_int_equal(b.budget, 1000);
	spk_tbucket_refill(&b, 5 * MS); /* a clock that went back: nothing */
	assert_int_equal(b.budget, 1000);
}

/* Fractions of a token are kept: 1 token per 3 ms, refilled in 1 ms steps. */
static void test_no_lost_fractions(void **state)
{
	struct spk_tbucket b = bucket(10, 0, 30);

	(void)state;
	spk_tbucket_spend(&b, 10);
	for (uint64_t t = 1; t <= 30; t++)
		spk_tbucket_refill(&b, 1000 * MS + t * MS);
	assert_int_equal(b.budget, 10);
}

/* one_time_burst is spent first and never comes back. */
static void test_burst(void **state)
{
	struct spk_tbucket b = bucket(100, 50, 1000);

	(void)state;
	spk_tbucket_spend(&b, 30);
	assert_int_equal(b.burst, 20);
	assert_int_equal(b.budget, 100);
	spk_tbucket_spend(&b, 70); /* 20 from the burst, 50 from the budget */
	assert_int_equal(b.burst, 0);
	assert_int_equal(b.budget, 50);
	spk_tbucket_refill(&b, 1000 * MS + 5000 * MS);
	assert_int_equal(b.burst, 0);
	assert_int_equal(b.budget, 100);
}

/* A request larger than what is left goes through and leaves a debt: the
 * bucket is ready again only when the debt is paid (Firecracker's
 * over-consumption). */
static void test_debt(void **state)
{
	struct spk_tbucket b = bucket(100, 0, 100); /* 1 token per ms */

	(void)state;
	spk_tbucket_spend(&b, 350); /* 250 in debt */
	assert_false(spk_tbucket_ready(&b));
	assert_int_equal(b.budget, -250);
	assert_int_equal(spk_tbucket_wait_ns(&b), 251 * MS);
	spk_tbucket_refill(&b, 1000 * MS + 250 * MS);
	assert_false(spk_tbucket_ready(&b)); /* 0 left: not above 0 yet */
	spk_tbucket_refill(&b, 1000 * MS + 251 * MS);
	assert_true(spk_tbucket_ready(&b));
	/* huge costs saturate instead of wrapping */
	spk_tbucket_spend(&b, UINT64_MAX);
	assert_true(b.budget < 0);
	spk_tbucket_spend(&b, UINT64_MAX);
	assert_true(b.budget < 0);
	assert_true(spk_tbucket_wait_ns(&b) > 0);
}

/* The rate is never exceeded: whatever the request sizes, what goes
 * through by time t is at most size + burst + one request + rate * t. */
static void test_rate_bound(void **state)
{
	struct spk_tbucket b = bucket(4096, 1024, 10); /* 4096 bytes per 10 ms */
	uint64_t now = 1000 * MS, passed = 0, biggest = 0;

	(void)state;
	for (unsigned i = 0; i < 20000; i++) {
		uint64_t cost = 1 + (i * 2654435761u) % 9000; /* some bigger than the bucket */

		spk_tbucket_refill(&b, now);
		if (spk_tbucket_ready(&b)) {
			spk_tbucket_spend(&b, cost);
			passed += cost;
			biggest = cost > biggest ? cost : biggest;
		}
		now += MS / 7;
		uint64_t elapsed = now - 1000 * MS;
		assert_true(passed <= 4096 + 1024 + biggest + elapsed * 4096 / (10 * MS));
	}
	assert_true(passed > 0);
}

static void test_unlimited_and_checks(void **state)
{
	struct spk_tbucket b = bucket(0, 0, 0);
	struct spk_rate_limit l = {0};

	(void)state;
	spk_tbucket_spend(&b, UINT64_MAX);
	assert_true(spk_tbucket_ready(&b));
	assert_int_equal(spk_tbucket_wait_ns(&b), 0);
	assert_int_equal(spk_rl_check(&l), 0);
	l.ops = (struct spk_token_bucket){10, 0, 0}; /* a size without a refill time */
	assert_int_equal(spk_rl_check(&l), -EINVAL);
	l.ops.refill_time_ms = SPK_RATE_REFILL_MAX_MS + 1;
	assert_int_equal(spk_rl_check(&l), -EINVAL);
	l.ops.refill_time_ms = SPK_RATE_REFILL_MAX_MS;
	assert_int_equal(spk_rl_check(&l), 0);
	l.bandwidth = (struct spk_token_bucket){(uint64_t)INT64_MAX + 1, 0, 1};
	assert_int_equal(spk_rl_check(&l), -EINVAL);
	assert_int_equal(spk_rl_check(NULL), -EINVAL);
	/* the largest values: no overflow in the refill */
	b = bucket(INT64_MAX, 0, SPK_RATE_REFILL_MAX_MS);
	spk_tbucket_spend(&b, INT64_MAX);
	spk_tbucket_refill(&b, UINT64_MAX);
	assert_int_equal(b.budget, INT64_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_refill),     cmocka_unit_test(test_no_lost_fractions),
	    cmocka_unit_test(test_burst),      cmocka_unit_test(test_debt),
	    cmocka_unit_test(test_rate_bound), cmocka_unit_test(test_unlimited_and_checks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
