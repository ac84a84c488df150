// SPDX-License-Identifier: Apache-2.0
/* The PL031 RTC: the AMBA IDs, the counter, load, match interrupt, state, hostile accesses. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "devtest.h"

#include "../snapshot/snaptest.h"

#define BASE 0x09010000

enum { DR = 0x00, MR = 0x04, LR = 0x08, CR = 0x0c, IMSC = 0x10, RIS = 0x14, MIS = 0x18 };
enum { ICR = 0x1c };

struct env {
	struct spk_pl031 *p;
	struct fake_irq irq;
	time_t now;
};

static time_t fake_now(void *ctx)
{
	return ((struct env *)ctx)->now;
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	struct spk_pl031_config cfg = {.irq = fake_line(&e->irq, 2), .now = fake_now, .now_ctx = e};

	e->now = 1765100000;
	assert_int_equal(spk_pl031_new(&cfg, &e->p), 0);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	assert_int_equal(e->irq.redundant, 0); /* set() only on a change */
	spk_pl031_free(e->p);
	free(e);
	return 0;
}

static uint32_t rd(struct env *e, unsigned off)
{
	return (uint32_t)dev_rd(spk_pl031_ops(), e->p, BASE, off, 4);
}

static void wr(struct env *e, unsigned off, uint32_t v)
{
	dev_wr(spk_pl031_ops(), e->p, BASE, off, 4, v);
}

/* What Linux's AMBA bus reads to bind rtc-pl031: periph ID 0x00041031,
 * cell ID 0xb105f00d, a byte in each word. */
static void test_ids(void **state)
{
	struct env *e = *state;
	uint32_t periph = 0, cell = 0;

	for (unsigned i = 0; i < 4; i++) {
		periph |= (rd(e, 0xfe0 + 4 * i) & 0xff) << (8 * i);
		cell |= (rd(e, 0xff0 + 4 * i) & 0xff) << (8 * i);
	}
	assert_int_equal(periph, 0x00041031);
	assert_int_equal(cell, 0xb105f00d);
	assert_int_equal(rd(e, CR), 1); /* running */
}

static void test_counter_and_load(void **state)
{
	struct env *e = *state;

	assert_int_equal(rd(e, DR), 1765100000u);
	e->now += 5;
	assert_int_equal(rd(e, DR), 1765100005u);
	wr(e, LR, 1000); /* the guest sets its clock */
	assert_int_equal(rd(e, DR), 1000);
	e->now += 3;
	assert_int_equal(rd(e, DR), 1003);
	wr(e, LR, 0xfffffffe); /* the register wraps at 32 bits */
	e->now += 3;
	assert_int_equal(rd(e, DR), 1);
	wr(e, DR, 5); /* read-only */
	assert_int_equal(rd(e, DR), 1);
	wr(e, CR, 0); /* stopping is not modelled: it runs on */
	assert_int_equal(rd(e, CR), 1);
}

static void test_match_interrupt(void **state)
{
	struct env *e = *state;
	uint32_t now = rd(e, DR);

	wr(e, MR, now + 2);
	wr(e, IMSC, 1);
	assert_false(e->irq.level);
	assert_int_equal(rd(e, RIS), 0);
	e->now += 1;
	assert_int_equal(rd(e, RIS), 0);
	e->now += 1; /* the match second: noticed at the next access */
	assert_int_equal(rd(e, RIS), 1);
	assert_int_equal(rd(e, MIS), 1);
	assert_true(e->irq.level);
	assert_int_equal(e->irq.gsi, 2);
	wr(e, ICR, 1);
	assert_false(e->irq.level);
	assert_int_equal(rd(e, RIS), 0);
	e->now += 100; /* no second match until MR is written again */
	assert_int_equal(rd(e, RIS), 0);
	/* masked: RIS rises, the line does not, until unmasked */
	wr(e, IMSC, 0);
	wr(e, MR, rd(e, DR) + 10);
	e->now += 60; /* passed between two accesses: still noticed */
	assert_int_equal(rd(e, RIS), 1);
	assert_int_equal(rd(e, MIS), 0);
	assert_false(e->irq.level);
	wr(e, IMSC, 1);
	assert_true(e->irq.level);
	wr(e, IMSC, 0);
	assert_false(e->irq.level);
	wr(e, ICR, 1);
	/* a match in the past (the clock set past it) does not fire */
	wr(e, MR, rd(e, DR) - 5);
	wr(e, IMSC, 1);
	e->now += 1;
	assert_int_equal(rd(e, RIS), 0);
	assert_false(e->irq.level);
	assert_int_equal(e->irq.rises, 2);
}

static void test_hostile(void **state)
{
	struct env *e = *state;
	uint64_t seed = 0x1031;
	uint32_t before;

	/* other widths and unaligned offsets: read 0, change nothing */
	before = rd(e, DR);
	assert_int_equal(dev_rd(spk_pl031_ops(), e->p, BASE, DR, 1), 0);
	assert_int_equal(dev_rd(spk_pl031_ops(), e->p, BASE, DR, 8), 0);
	assert_int_equal(dev_rd(spk_pl031_ops(), e->p, BASE, 2, 4), 0);
	dev_wr(spk_pl031_ops(), e->p, BASE, LR, 2, 7);
	dev_wr(spk_pl031_ops(), e->p, BASE, LR + 1, 4, 7);
	assert_int_equal(rd(e, DR), before);
	/* holes and offsets past the page read 0 */
	assert_int_equal(rd(e, 0x20), 0);
	assert_int_equal(rd(e, 0x1000), 0);
	assert_int_equal(dev_rd(spk_pl031_ops(), e->p, BASE, UINT64_MAX - 3, 4), 0);
	for (int i = 0; i < HOSTILE_ITERATIONS; i++) {
		unsigned w = prng_width(&seed);
		uint64_t off = prng_next(&seed) % 0x1010;

		if (prng_next(&seed) & 1)
			dev_rd(spk_pl031_ops(), e->p, BASE, off, w);
		else
			dev_wr(spk_pl031_ops(), e->p, BASE, off, w, prng_value(&seed, w));
		e->now += prng_next(&seed) % 3;
		/* the line always says RIS & IMSC */
		assert_int_equal(e->irq.level, rd(e, MIS) == 1);
	}
}

static void test_state(void **state)
{
	struct env *ea = *state, eb = {.now = ea->now};
	struct spk_pl031_config cb = {
	    .irq = fake_line(&eb.irq, 2), .now = fake_now, .now_ctx = &eb};
	struct spk_pl031 *b;

	assert_int_equal(spk_pl031_new(&cb, &b), 0);
	wr(ea, LR, 5000);
	wr(ea, MR, 5001);
	wr(ea, IMSC, 1);
	ea->now += 2;
	assert_int_equal(rd(ea, RIS), 1); /* noticed at this access */
	assert_true(ea->irq.level);
	round_trip("rtc0", spk_pl031_state_ops(), ea->p, b);
	assert_true(eb.irq.level); /* the line follows the loaded state */
	eb.now = ea->now += 7;
	eb.p = b;
	for (unsigned off = 0; off < 0x20; off += 4)
		assert_int_equal(rd(ea, off), rd(&eb, off));
	const struct patch bad[] = {
	    {"imsc", SPK_SNAP_U8, 2, NULL, 0, "2 is more than 1"},
	    {"ris", SPK_SNAP_U8, 9, NULL, 0, "9 is more than 1"},
	};
	hostile("rtc0", spk_pl031_state_ops(), b, bad, sizeof(bad) / sizeof(bad[0]));
	spk_pl031_free(b);
}

static void test_config_errors(void **state)
{
	struct spk_pl031_config cfg = {0};
	struct spk_pl031 *p = (struct spk_pl031 *)1;

	assert_int_equal(spk_pl031_new(NULL, &p), -EINVAL);
	assert_null(p);
	assert_int_equal(spk_pl031_new(&cfg, NULL), -EINVAL);
	assert_int_equal(spk_pl031_new(&cfg, &p), 0); /* the host's clock, no line */
	assert_true(dev_rd(spk_pl031_ops(), p, BASE, DR, 4) > 1700000000u);
	spk_pl031_free(p);
	spk_pl031_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_ids, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_counter_and_load, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_match_interrupt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_state, setup, teardown),
	    cmocka_unit_test(test_config_errors),
	};

	spk_log_set(NULL, NULL, SPK_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
