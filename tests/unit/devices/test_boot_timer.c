// SPDX-License-Identifier: Apache-2.0
/* The boot timer: one report of a sane duration, everything else ignored. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sparkler/platform.h>

#include "devtest.h"

#define BASE SPK_PC_BOOT_TIMER
#define MS   1000000ull

struct env {
	struct spk_boot_timer *t;
	unsigned reports;
	uint64_t ns;
};

static void report(void *ctx, uint64_t ns)
{
	struct env *e = ctx;

	e->reports++;
	e->ns = ns;
}

/* A timer that started ago_ms milliseconds ago. */
static struct env *make(unsigned ago_ms)
{
	struct env *e = calloc(1, sizeof(*e));
	struct spk_boot_timer_config cfg = {.report = report};

	assert_non_null(e);
	cfg.report_ctx = e;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	cfg.start = (struct spk_timespec){now.tv_sec, now.tv_nsec};
	cfg.start.tv_sec -= ago_ms / 1000;
	cfg.start.tv_nsec -= (long)(ago_ms % 1000) * 1000000;
	if (cfg.start.tv_nsec < 0) {
		cfg.start.tv_nsec += 1000000000;
		cfg.start.tv_sec--;
	}
	assert_int_equal(spk_boot_timer_new(&cfg, &e->t), 0);
	return e;
}

static void destroy(struct env *e)
{
	spk_boot_timer_free(e->t);
	free(e);
}

static void wr(struct env *e, uint64_t off, unsigned width, uint64_t v)
{
	dev_wr(spk_boot_timer_ops(), e->t, BASE, off, width, v);
}

static void test_magic_once(void **state)
{
	struct env *e = make(250);

	wr(e, 0, 1, SPK_PC_BOOT_TIMER_MAGIC);
	assert_int_equal(e->reports, 1);
	assert_true(e->ns >= 250 * MS);
	assert_true(e->ns < 60000 * MS); /* a test run is not a minute */
	wr(e, 0, 1, SPK_PC_BOOT_TIMER_MAGIC);
	assert_int_equal(e->reports, 1);
	destroy(e);
}

static void test_other_writes_ignored(void **state)
{
	struct env *e = make(0);
	struct log_capture logs;

	log_capture_start(&logs);
	wr(e, 0, 1, SPK_PC_BOOT_TIMER_MAGIC - 1);
	wr(e, 0, 1, 0);
	wr(e, 0, 2, SPK_PC_BOOT_TIMER_MAGIC); /* a byte, not a word */
	wr(e, 0, 4, SPK_PC_BOOT_TIMER_MAGIC);
	wr(e, 0, 8, SPK_PC_BOOT_TIMER_MAGIC);
	wr(e, 1, 1, SPK_PC_BOOT_TIMER_MAGIC); /* offset 0 only */
	wr(e, 0xfff, 1, SPK_PC_BOOT_TIMER_MAGIC);
	log_capture_stop();
	assert_int_equal(e->reports, 0);
	/* reads return 0 */
	for (unsigned w = 1; w <= 8; w *= 2)
		assert_int_equal(dev_rd(spk_boot_timer_ops(), e->t, BASE, 0, w), 0);
	/* and the magic still works after all that */
	wr(e, 0, 1, SPK_PC_BOOT_TIMER_MAGIC);
	assert_int_equal(e->reports, 1);
	assert_true(e->ns < 60000 * MS);
	destroy(e);
}

static void test_hostile(void **state)
{
	struct env *e = make(0);
	struct log_capture logs;
	uint64_t seed = 0xb007;

	log_capture_start(&logs);
	for (unsigned n = 0; n < HOSTILE_ITERATIONS; n++) {
		unsigned width = prng_width(&seed);
		uint64_t off = prng_next(&seed) % 0x1000;
		uint64_t v = prng_value(&seed, width);

		if (n % 7 == 0) { /* often the magic, at random places and widths */
			off = prng_next(&seed) % 2;
			v = SPK_PC_BOOT_TIMER_MAGIC;
		}
		if (prng_next(&seed) % 3 == 0)
			assert_int_equal(dev_rd(spk_boot_timer_ops(), e->t, BASE, off, width), 0);
		else
			wr(e, off, width, v);
		assert_true(e->reports <= 1);
	}
	assert_true(logs.lines <= SPK_DEV_LOG_BURST + 1);
	log_capture_stop();
	assert_int_equal(e->reports, 1);
	destroy(e);
}

static void test_config(void **state)
{
	struct spk_boot_timer *t = (void *)1;
	struct spk_boot_timer_config cfg = {.start = {.tv_sec = 0, .tv_nsec = 1000000000}};

	assert_int_equal(spk_boot_timer_new(NULL, &t), -EINVAL);
	assert_null(t);
	assert_int_equal(spk_boot_timer_new(&cfg, &t), -EINVAL);
	cfg.start.tv_nsec = -1;
	assert_int_equal(spk_boot_timer_new(&cfg, &t), -EINVAL);
	/* a start in the future reports 0; no report hook is fine */
	cfg.start.tv_nsec = 0;
	cfg.start.tv_sec = INT64_MAX;
	assert_int_equal(spk_boot_timer_new(&cfg, NULL), -EINVAL);
	assert_int_equal(spk_boot_timer_new(&cfg, &t), 0);
	dev_wr(spk_boot_timer_ops(), t, BASE, 0, 1, SPK_PC_BOOT_TIMER_MAGIC);
	spk_boot_timer_free(t);
	spk_boot_timer_free(NULL);

	struct env *e = make(0);

	spk_boot_timer_free(e->t);
	cfg = (struct spk_boot_timer_config){
	    .start = {.tv_sec = INT64_MAX}, .report = report, .report_ctx = e};
	assert_int_equal(spk_boot_timer_new(&cfg, &e->t), 0);
	wr(e, 0, 1, SPK_PC_BOOT_TIMER_MAGIC);
	assert_int_equal(e->reports, 1);
	assert_int_equal(e->ns, 0);
	spk_boot_timer_free(e->t);
	cfg.start.tv_sec = INT64_MIN; /* "forever ago" saturates */
	assert_int_equal(spk_boot_timer_new(&cfg, &e->t), 0);
	wr(e, 0, 1, SPK_PC_BOOT_TIMER_MAGIC);
	assert_int_equal(e->reports, 2);
	assert_int_equal(e->ns, UINT64_MAX);
	destroy(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_magic_once),
	    cmocka_unit_test(test_other_writes_ignored),
	    cmocka_unit_test(test_hostile),
	    cmocka_unit_test(test_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
