// SPDX-License-Identifier: Apache-2.0
/* The CMOS RTC: BCD, binary and 12-hour reads, register C, setting the clock, hostile input. */
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

#define BASE 0x70

/* 2024-02-29 23:59:58 UTC, a Thursday, one leap second-ish from March */
#define T0 ((time_t)1709251198)

enum {
	SEC = 0x00,
	SEC_ALARM = 0x01,
	MIN = 0x02,
	MIN_ALARM = 0x03,
	HOUR = 0x04,
	HOUR_ALARM = 0x05,
	WDAY = 0x06,
	MDAY = 0x07,
	MON = 0x08,
	YEAR = 0x09,
	REG_A = 0x0a,
	REG_B = 0x0b,
	REG_C = 0x0c,
	REG_D = 0x0d,
	CENTURY = 0x32,
};

struct env {
	struct spk_rtc *r;
	time_t host; /* the fake host clock: only the test moves it */
};

static time_t fake_now(void *ctx)
{
	return ((struct env *)ctx)->host;
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	struct spk_rtc_config cfg = {.now = fake_now, .now_ctx = e};

	assert_non_null(e);
	e->host = T0;
	assert_int_equal(spk_rtc_new(&cfg, &e->r), 0);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	log_capture_stop();
	spk_rtc_free(e->r);
	free(e);
	return 0;
}

/* CMOS_READ / CMOS_WRITE */
static uint8_t rd(struct env *e, uint8_t idx)
{
	dev_wr(spk_rtc_ops(), e->r, BASE, 0, 1, idx);
	return (uint8_t)dev_rd(spk_rtc_ops(), e->r, BASE, 1, 1);
}

static void wr(struct env *e, uint8_t idx, uint8_t v)
{
	dev_wr(spk_rtc_ops(), e->r, BASE, 0, 1, idx);
	dev_wr(spk_rtc_ops(), e->r, BASE, 1, 1, v);
}

struct regs {
	uint8_t sec, min, hour, wday, mday, mon, year, century;
};

static struct regs read_time(struct env *e)
{
	return (struct regs){rd(e, SEC),  rd(e, MIN), rd(e, HOUR), rd(e, WDAY),
	                     rd(e, MDAY), rd(e, MON), rd(e, YEAR), rd(e, CENTURY)};
}

static void assert_regs(struct regs got, struct regs want)
{
	assert_int_equal(got.sec, want.sec);
	assert_int_equal(got.min, want.min);
	assert_int_equal(got.hour, want.hour);
	assert_int_equal(got.wday, want.wday);
	assert_int_equal(got.mday, want.mday);
	assert_int_equal(got.mon, want.mon);
	assert_int_equal(got.year, want.year);
	assert_int_equal(got.century, want.century);
}

static void test_defaults(void **state)
{
	struct env *e = *state;

	assert_int_equal(rd(e, REG_A), 0x26);
	assert_int_equal(rd(e, REG_B), 0x02); /* 24-hour, BCD */
	assert_int_equal(rd(e, REG_D), 0x80); /* valid RAM and time */
	/* the index register is write-only */
	assert_int_equal(dev_rd(spk_rtc_ops(), e->r, BASE, 0, 1), 0xff);
}

static void test_bcd(void **state)
{
	struct env *e = *state;

	assert_regs(read_time(e), (struct regs){0x58, 0x59, 0x23, 5, 0x29, 0x02, 0x24, 0x20});
	e->host += 2; /* into March */
	assert_regs(read_time(e), (struct regs){0x00, 0x00, 0x00, 6, 0x01, 0x03, 0x24, 0x20});
}

static void test_binary(void **state)
{
	struct env *e = *state;

	wr(e, REG_B, 0x06);
	assert_regs(read_time(e), (struct regs){58, 59, 23, 5, 29, 2, 24, 20});
}

static void test_12_hour(void **state)
{
	struct env *e = *state;

	wr(e, REG_B, 0x00);                         /* 12-hour, BCD */
	assert_int_equal(rd(e, HOUR), 0x80 | 0x11); /* 11 PM */
	e->host = T0 + 2 + 30 * 60;                 /* 00:30 */
	assert_int_equal(rd(e, HOUR), 0x12);        /* 12 AM */
	e->host += 12 * 3600;                       /* 12:30 */
	assert_int_equal(rd(e, HOUR), 0x80 | 0x12); /* 12 PM */
	e->host += 3600;                            /* 13:30 */
	assert_int_equal(rd(e, HOUR), 0x80 | 0x01);
	e->host -= 4 * 3600; /* 09:30 */
	assert_int_equal(rd(e, HOUR), 0x09);
	wr(e, REG_B, 0x04); /* 12-hour, binary */
	e->host = T0;
	assert_int_equal(rd(e, HOUR), 0x80 | 11);
}

static void test_register_c(void **state)
{
	struct env *e = *state;

	assert_int_equal(rd(e, REG_C), 0x00); /* nothing happened yet */
	e->host++;
	assert_int_equal(rd(e, REG_C) & 0x10, 0x10); /* an update ended */
	assert_int_equal(rd(e, REG_C), 0x00);        /* read clears */
	/* enabled: IRQF too */
	wr(e, REG_B, 0x02 | 0x10);
	e->host++;
	assert_int_equal(rd(e, REG_C) & 0x90, 0x90);
	assert_int_equal(rd(e, REG_C), 0x00);
	/* an alarm of "any second of any minute of any hour" */
	wr(e, SEC_ALARM, 0xc0);
	wr(e, MIN_ALARM, 0xff);
	wr(e, HOUR_ALARM, 0xc0);
	e->host++;
	assert_int_equal(rd(e, REG_C) & 0x30, 0x30);
	/* an alarm that does not match */
	wr(e, SEC_ALARM, 0x30);
	e->host++;
	assert_int_equal(rd(e, REG_C) & 0x30, 0x10);
	/* C and D do not take writes */
	wr(e, REG_C, 0xff);
	wr(e, REG_D, 0x00);
	assert_int_equal(rd(e, REG_C), 0x00);
	assert_int_equal(rd(e, REG_D), 0x80);
}

static void test_index_masking(void **state)
{
	struct env *e = *state;

	assert_int_equal(rd(e, 0x80 | SEC), 0x58); /* bit 7 is the NMI mask */
	assert_int_equal(rd(e, 0x80 | REG_D), 0x80);
	wr(e, 0xff, 0x5a);
	assert_int_equal(rd(e, 0x7f), 0x5a);
	/* battery-backed RAM, 0x0e-0x7f */
	for (unsigned i = 0x0e; i < 0x80; i++) {
		if (i != CENTURY)
			wr(e, (uint8_t)i, (uint8_t)(i ^ 0xa5));
	}
	for (unsigned i = 0x0e; i < 0x80; i++) {
		if (i != CENTURY)
			assert_int_equal(rd(e, (uint8_t)i), (uint8_t)(i ^ 0xa5));
	}
	/* an offset that would wrap around to the index port touches nothing */
	assert_int_equal(dev_rd(spk_rtc_ops(), e->r, 0, UINT64_MAX, 2), 0xffff);
	dev_wr(spk_rtc_ops(), e->r, 0, UINT64_MAX, 2, 0x0000);
	assert_int_equal(rd(e, 0x7f), 0x7f ^ 0xa5);
	/* a word write to 0x70 sets the index and writes the data */
	dev_wr(spk_rtc_ops(), e->r, BASE, 0, 2, 0xab0e);
	assert_int_equal(rd(e, 0x0e), 0xab);
	dev_wr(spk_rtc_ops(), e->r, BASE, 0, 1, REG_D);
	assert_int_equal(dev_rd(spk_rtc_ops(), e->r, BASE, 0, 2), 0x80ff);
}

static void test_uip_never_set(void **state)
{
	struct env *e = *state;

	wr(e, REG_A, 0xff); /* UIP is read-only */
	assert_int_equal(rd(e, REG_A), 0x7f);
	for (unsigned i = 0; i < 3000; i++) {
		e->host += 1;
		assert_int_equal(rd(e, REG_A) & 0x80, 0);
	}
}

/* Linux's mc146818_set_time(), BCD, with the FADT century register. */
static void linux_set_time(struct env *e, struct regs t)
{
	uint8_t save_control = rd(e, REG_B), save_freq = rd(e, REG_A);

	wr(e, REG_B, save_control | 0x80);
	wr(e, REG_A, save_freq | 0x70);
	wr(e, YEAR, t.year);
	wr(e, MON, t.mon);
	wr(e, MDAY, t.mday);
	wr(e, HOUR, t.hour);
	wr(e, MIN, t.min);
	wr(e, SEC, t.sec);
	wr(e, CENTURY, t.century);
	wr(e, REG_B, save_control);
	wr(e, REG_A, save_freq);
}

static void test_set_time(void **state)
{
	struct env *e = *state;

	linux_set_time(e, (struct regs){0x50, 0x59, 0x23, 0, 0x31, 0x12, 0x25, 0x20});
	assert_int_equal(e->host, T0); /* the host clock did not move */
	assert_regs(read_time(e), (struct regs){0x50, 0x59, 0x23, 4, 0x31, 0x12, 0x25, 0x20});
	e->host += 15; /* and the guest clock runs with it */
	assert_regs(read_time(e), (struct regs){0x05, 0x00, 0x00, 5, 0x01, 0x01, 0x26, 0x20});
	assert_int_equal(rd(e, REG_A), 0x26);
	assert_int_equal(rd(e, REG_B), 0x02);

	/* a second RTC on the same host clock still reads the host time */
	struct spk_rtc *other;
	struct spk_rtc_config cfg = {.now = fake_now, .now_ctx = e};
	struct spk_rtc *mine = e->r;

	assert_int_equal(spk_rtc_new(&cfg, &other), 0);
	e->r = other;
	assert_int_equal(rd(e, YEAR), 0x24);
	e->r = mine;
	spk_rtc_free(other);
}

static void test_set_time_frozen_while_set(void **state)
{
	struct env *e = *state;

	wr(e, REG_B, 0x92);
	assert_int_equal(rd(e, REG_B), 0x82); /* SET clears UIE */
	e->host += 100;                       /* updates are inhibited while SET */
	assert_int_equal(rd(e, SEC), 0x58);
	wr(e, MIN, 0x10);
	assert_int_equal(rd(e, MIN), 0x10);
	assert_int_equal(rd(e, REG_C), 0x00); /* no update cycle either */
	wr(e, REG_B, 0x02);
	/* 23:10:58 from here on */
	assert_int_equal(rd(e, MIN), 0x10);
	assert_int_equal(rd(e, SEC), 0x58);
	assert_int_equal(rd(e, HOUR), 0x23);
}

static void test_set_time_binary_12h(void **state)
{
	struct env *e = *state;

	/* set 1999-12-31 11:59:59 PM in binary 12-hour mode, no century
	 * register written: it stays 20 -> 2099 */
	wr(e, REG_B, 0x80 | 0x04);
	wr(e, YEAR, 99);
	wr(e, MON, 12);
	wr(e, MDAY, 31);
	wr(e, HOUR, 0x80 | 11);
	wr(e, MIN, 59);
	wr(e, SEC, 59);
	wr(e, REG_B, 0x04);
	assert_regs(read_time(e), (struct regs){59, 59, 0x80 | 11, 5, 31, 12, 99, 20});
	wr(e, CENTURY, 19); /* one register, without SET */
	assert_regs(read_time(e), (struct regs){59, 59, 0x80 | 11, 6, 31, 12, 99, 19});
	e->host++;
	wr(e, REG_B, 0x06); /* 24-hour binary */
	assert_regs(read_time(e), (struct regs){0, 0, 0, 7, 1, 1, 0, 20});
}

/* Leaving SET and changing the format in one write: the registers were
 * written in the old format. */
static void test_set_time_format_change(void **state)
{
	struct env *e = *state;

	wr(e, REG_B, 0x82);
	wr(e, MIN, 0x45); /* BCD 45 */
	wr(e, REG_B, 0x06);
	assert_int_equal(rd(e, MIN), 45);
}

static void test_invalid_time_ignored(void **state)
{
	struct env *e = *state;
	struct log_capture logs;
	struct regs before;

	log_capture_start(&logs);
	before = read_time(e);
	wr(e, REG_B, 0x82);
	wr(e, MDAY, 0x30); /* 30 February */
	wr(e, REG_B, 0x02);
	assert_regs(read_time(e), before);
	wr(e, MIN, 0x6a); /* not BCD */
	wr(e, HOUR, 0x24);
	wr(e, MON, 0x13);
	wr(e, CENTURY, 0x18); /* 1824: before 1900 */
	wr(e, REG_B, 0x00);   /* 12-hour */
	wr(e, HOUR, 0x00);    /* there is no hour 0 */
	wr(e, REG_B, 0x02);
	assert_regs(read_time(e), before);
	assert_true(logs.warnings >= 1);
	assert_int_equal(e->host, T0);
}

static void test_hostile(void **state)
{
	struct env *e = *state;
	struct log_capture logs;
	uint64_t seed = 0x146818;

	log_capture_start(&logs);
	for (unsigned n = 0; n < HOSTILE_ITERATIONS; n++) {
		unsigned width = prng_width(&seed);
		uint64_t off = prng_next(&seed) % 3;

		if (prng_next(&seed) % 3 == 0)
			dev_rd(spk_rtc_ops(), e->r, BASE, off, width);
		else
			dev_wr(spk_rtc_ops(), e->r, BASE, off, width, prng_value(&seed, width));
		if (n % 64 == 0) {
			assert_int_equal(rd(e, REG_A) & 0x80, 0);
			assert_int_equal(rd(e, REG_D), 0x80);
		}
		e->host += (time_t)(prng_next(&seed) % 3);
	}
	assert_true(logs.lines <= SPK_DEV_LOG_BURST + 1);
	log_capture_stop();
	/* back to 24-hour BCD: every register is a valid BCD value */
	wr(e, REG_B, 0x02);
	struct regs t = read_time(e);
	const uint8_t *b = &t.sec;

	for (unsigned i = 0; i < sizeof(t); i++)
		assert_true((b[i] >> 4) <= 9 && (b[i] & 0xf) <= 9);
	assert_true(t.mon >= 1 && t.mon <= 0x12);
	assert_true(t.mday >= 1 && t.mday <= 0x31);
	assert_true(t.hour <= 0x23);
}

/* Host clocks outside the registers' range do not break anything. */
static void test_wild_host_clock(void **state)
{
	struct env *e = *state;
	const time_t clocks[] = {0, -1, (time_t)INT64_MIN, (time_t)INT64_MAX, (time_t)1 << 40};

	for (unsigned i = 0; i < sizeof(clocks) / sizeof(clocks[0]); i++) {
		e->host = clocks[i];
		read_time(e);
		rd(e, REG_C);
		wr(e, REG_B, 0x82);
		wr(e, REG_B, 0x02);
		wr(e, SEC, 0x00);
	}
}

/* Past 9999-12-31 23:59:59 the clock stays there: 60 days on is
 * 10000-02-29, which must not read as 9999-02-29, a date that does not
 * exist (fuzz/regressions/devices/rtc-past-year-9999). */
static void test_past_year_9999(void **state)
{
	struct env *e = *state;
	const struct regs last = {0x59, 0x59, 0x23, 6, 0x31, 0x12, 0x99, 0x99};

	linux_set_time(e, last);
	assert_regs(read_time(e), last);
	e->host += 60 * 86400;
	assert_regs(read_time(e), last);
	/* and before year 0 (a host clock 30000 years back) it stays at
	 * 0000-01-01 00:00:00, a Saturday */
	e->host = (time_t)-1000000000000;
	assert_regs(read_time(e), (struct regs){0x00, 0x00, 0x00, 7, 0x01, 0x01, 0x00, 0x00});
}

static void test_null_config(void **state)
{
	struct spk_rtc *r;
	uint8_t year;

	/* no config: the real clock */
	assert_int_equal(spk_rtc_new(NULL, &r), 0);
	dev_wr(spk_rtc_ops(), r, BASE, 0, 1, YEAR);
	year = (uint8_t)dev_rd(spk_rtc_ops(), r, BASE, 1, 1);
	assert_true(year >= 0x24 && year <= 0x99);
	spk_rtc_free(r);
	spk_rtc_free(NULL);
	assert_int_equal(spk_rtc_new(NULL, NULL), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bcd, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_binary, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_12_hour, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_register_c, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_index_masking, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_uip_never_set, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_set_time, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_set_time_frozen_while_set, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_set_time_binary_12h, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_set_time_format_change, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_invalid_time_ignored, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wild_host_clock, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_past_year_9999, setup, teardown),
	    cmocka_unit_test(test_null_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
