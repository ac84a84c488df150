// SPDX-License-Identifier: Apache-2.0
/* The bus router: registration, lookup, routing, miss policies, locking. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <sparkler/bus.h>
#include <sparkler/log.h>

/* A device that records what it saw. */
struct dev {
	int id;
	int reads, writes;
	uint64_t offset;
	unsigned width;
	uint64_t value;      /* last written */
	uint64_t read_value; /* what reads return */
	struct spk_bus_access who;
};

static uint64_t dev_read(void *opaque, uint64_t offset, unsigned width,
                         const struct spk_bus_access *who)
{
	struct dev *d = opaque;

	d->reads++;
	d->offset = offset;
	d->width = width;
	d->who = *who;
	return d->read_value;
}

static void dev_write(void *opaque, uint64_t offset, unsigned width, uint64_t value,
                      const struct spk_bus_access *who)
{
	struct dev *d = opaque;

	d->writes++;
	d->offset = offset;
	d->width = width;
	d->value = value;
	d->who = *who;
}

static const struct spk_bus_ops dev_ops = {.read = dev_read, .write = dev_write};
static const struct spk_bus_ops null_ops = {0};

static int setup(void **state)
{
	struct spk_bus *bus;

	assert_int_equal(spk_bus_new(&bus), 0);
	*state = bus;
	return 0;
}

static int teardown(void **state)
{
	/* A failed test may have left its capture logger installed. */
	spk_log_set(NULL, NULL, SPK_LOG_WARN);
	spk_bus_free(*state);
	return 0;
}

/* ---- log capture ---- */

struct capture {
	int warnings;
	char last[512];
};

static void capture_log(enum spk_log_level level, const char *msg, void *opaque)
{
	struct capture *c = opaque;

	if (level != SPK_LOG_WARN)
		return;
	c->warnings++;
	snprintf(c->last, sizeof(c->last), "%s", msg);
}

/* ---- registration ---- */

static void test_overlap_names_both(void **state)
{
	struct spk_bus *bus = *state;
	struct dev d = {0};

	assert_int_equal(spk_bus_register(bus, SPK_BUS_PIO, 0x3f8, 8, "uart0", &dev_ops, &d, 0), 0);
	assert_int_equal(spk_bus_register(bus, SPK_BUS_PIO, 0x3f8, 8, "uart1", &dev_ops, &d, 0),
	                 -EEXIST);
	assert_non_null(strstr(spk_last_error(), "\"uart0\""));
	assert_non_null(strstr(spk_last_error(), "\"uart1\""));
	assert_non_null(strstr(spk_last_error(), "PIO"));
	assert_non_null(strstr(spk_last_error(), "0x3f8"));
	/* Partial overlaps at either end, and a range containing it. */
	assert_int_equal(spk_bus_register(bus, SPK_BUS_PIO, 0x3f0, 9, "low", &dev_ops, &d, 0),
	                 -EEXIST);
	assert_int_equal(spk_bus_register(bus, SPK_BUS_PIO, 0x3ff, 1, "high", &dev_ops, &d, 0),
	                 -EEXIST);
	assert_int_equal(spk_bus_register(bus, SPK_BUS_PIO, 0, 0x10000, "all", &dev_ops, &d, 0),
	                 -EEXIST);
	assert_non_null(strstr(spk_last_error(), "\"all\""));
	/* Touching neighbours are fine, and the spaces are separate. */
	assert_int_equal(spk_bus_register(bus, SPK_BUS_PIO, 0x3f0, 8, "below", &dev_ops, &d, 0), 0);
	assert_int_equal(spk_bus_register(bus, SPK_BUS_PIO, 0x400, 1, "above", &dev_ops, &d, 0), 0);
	assert_int_equal(spk_bus_register(bus, SPK_BUS_MMIO, 0x3f8, 8, "mmio", &dev_ops, &d, 0), 0);
	assert_int_equal(spk_bus_register(bus, SPK_BUS_SYSREG, 0x3f8, 8, "msr", &dev_ops, &d, 0),
	                 0);
	assert_string_equal(spk_bus_owner(bus, SPK_BUS_PIO, 0x3f7), "below");
	assert_string_equal(spk_bus_owner(bus, SPK_BUS_PIO, 0x3f8), "uart0");
	assert_string_equal(spk_bus_owner(bus, SPK_BUS_PIO, 0x400), "above");
	assert_string_equal(spk_bus_owner(bus, SPK_BUS_MMIO, 0x3f8), "mmio");
}

static void test_register_refusals(void **state)
{
	struct spk_bus *bus = *state;
	struct dev d = {0};
	char long_name[100];

	assert_int_equal(spk_bus_register(bus, SPK_BUS_MMIO, 0x1000, 0, "empty", &dev_ops, &d, 0),
	                 -EINVAL);
	assert_non_null(strstr(spk_last_error(), "\"empty\""));
	assert_int_equal(
	    spk_bus_register(bus, SPK_BUS_MMIO, UINT64_MAX, 2, "wrap", &dev_ops, &d, 0), -EINVAL);
	assert_non_null(strstr(spk_last_error(), "wraps"));
	assert_int_equal(
	    spk_bus_register(bus, SPK_BUS_MMIO, 0x1000, UINT64_MAX, "wrap2", &dev_ops, &d, 0),
	    -EINVAL);
	assert_int_equal(spk_bus_register(bus, SPK_BUS_MMIO, 0x1000, 1, NULL, &dev_ops, &d, 0),
	                 -EINVAL);
	assert_int_equal(spk_bus_register(bus, SPK_BUS_MMIO, 0x1000, 1, "", &dev_ops, &d, 0),
	                 -EINVAL);
	assert_int_equal(spk_bus_register(bus, SPK_BUS_MMIO, 0x1000, 1, "noops", NULL, &d, 0),
	                 -EINVAL);
	assert_int_equal(spk_bus_register(bus, SPK_BUS__COUNT, 0x1000, 1, "space", &dev_ops, &d, 0),
	                 -EINVAL);
	assert_int_equal(
	    spk_bus_register(bus, SPK_BUS_MMIO, 0x1000, 1, "flags", &dev_ops, &d, 0x80), -EINVAL);
	assert_int_equal(spk_bus_register(NULL, SPK_BUS_MMIO, 0x1000, 1, "nobus", &dev_ops, &d, 0),
	                 -EINVAL);
	/* Nothing of the above was registered. */
	assert_null(spk_bus_owner(bus, SPK_BUS_MMIO, 0x1000));

	/* Long names are truncated, not refused. */
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	assert_int_equal(spk_bus_register(bus, SPK_BUS_MMIO, 0x1000, 1, long_name, &dev_ops, &d, 0),
	                 0);
	assert_int_equal(strlen(spk_bus_owner(bus, SPK_BUS_MMIO, 0x1000)), SPK_BUS_NAME_MAX - 1);
}

static void test_range_ending_at_top(void **state)
{
	struct spk_bus *bus = *state;
	struct dev d = {.read_value = 0x1122334455667788};
	struct capture cap = {0};
	uint64_t v = 0;

	/* [2^64 - 4096, 2^64) is legal. */
	assert_int_equal(
	    spk_bus_register(bus, SPK_BUS_MMIO, UINT64_MAX - 0xfff, 0x1000, "top", &dev_ops, &d, 0),
	    0);
	assert_string_equal(spk_bus_owner(bus, SPK_BUS_MMIO, UINT64_MAX), "top");
	assert_int_equal(spk_bus_read(bus, SPK_BUS_MMIO, UINT64_MAX, 1, &v, NULL), 0);
	assert_true(d.offset == 0xfff);
	assert_true(v == 0x88);
	assert_int_equal(spk_bus_read(bus, SPK_BUS_MMIO, UINT64_MAX - 7, 8, &v, NULL), 0);
	assert_true(d.offset == 0xff8);
	/* An access wrapping past 2^64 is a miss, not a wrap to 0. */
	spk_log_set(capture_log, &cap, SPK_LOG_WARN);
	assert_int_equal(spk_bus_read(bus, SPK_BUS_MMIO, UINT64_MAX, 2, &v, NULL), -ENOENT);
	assert_int_equal(spk_bus_write(bus, SPK_BUS_MMIO, UINT64_MAX - 2, 4, 0, NULL), -ENOENT);
	spk_log_set(NULL, NULL, SPK_LOG_WARN);
	assert_int_equal(cap.warnings, 2);
	assert_non_null(strstr(cap.last, "\"top\""));
	assert_int_equal(d.reads, 2);
	assert_int_equal(d.writes, 0);
}

static void test_freeze(void **state)
{
	struct spk_bus *bus = *state;
	struct dev d = {.read_value = 5};
	uint64_t v = 0;

	assert_false(spk_bus_frozen(bus));
	assert_int_equal(spk_bus_register(bus, SPK_BUS_PIO, 0x60, 1, "kbd", &dev_ops, &d, 0), 0);
	spk_bus_freeze(bus);
	assert_true(spk_bus_frozen(bus));
	assert_int_equal(spk_bus_register(bus, SPK_BUS_PIO, 0x64, 1, "kbd-cmd", &dev_ops, &d, 0),
	                 -EBUSY);
	assert_non_null(strstr(spk_last_error(), "\"kbd-cmd\""));
	assert_non_null(strstr(spk_last_error(), "frozen"));
	spk_bus_freeze(bus);
	assert_true(spk_bus_frozen(bus));
	assert_null(spk_bus_owner(bus, SPK_BUS_PIO, 0x64));
	/* Lookups and policy changes still work. */
	assert_int_equal(spk_bus_read(bus, SPK_BUS_PIO, 0x60, 1, &v, NULL), 0);
	assert_true(v == 5);
	assert_int_equal(spk_bus_set_miss_policy(bus, SPK_BUS_PIO, SPK_MISS_FATAL), 0);
	assert_int_equal(spk_bus_miss_policy(bus, SPK_BUS_PIO), SPK_MISS_FATAL);
	assert_false(spk_bus_frozen(NULL));
}

/* ---- routing ---- */

static void test_lookup_edges(void **state)
{
	struct spk_bus *bus = *state;
	struct dev d = {.read_value = 0xab};
	uint64_t v = 0;

	assert_int_equal(spk_bus_register(bus, SPK_BUS_MMIO, 0x1000, 0x100, "dev", &dev_ops, &d, 0),
	                 0);
	assert_null(spk_bus_owner(bus, SPK_BUS_MMIO, 0xfff));
	assert_string_equal(spk_bus_owner(bus, SPK_BUS_MMIO, 0x1000), "dev");
	assert_string_equal(spk_bus_owner(bus, SPK_BUS_MMIO, 0x10ff), "dev");
	assert_null(spk_bus_owner(bus, SPK_BUS_MMIO, 0x1100));
	assert_null(spk_bus_owner(bus, SPK_BUS_PIO, 0x1000));

	/* a miss is the hot path: it formats no message (the last one stays) */
	assert_int_equal(spk_bus_read(bus, SPK_BUS_MMIO, 0x1000, 3, &v, NULL), -EINVAL);
	assert_non_null(strstr(spk_last_error(), "bad width 3"));
	assert_int_equal(spk_bus_read(bus, SPK_BUS_MMIO, 0xfff, 1, &v, NULL), -ENOENT);
	assert_non_null(strstr(spk_last_error(), "bad width 3"));
	assert_int_equal(spk_bus_read(bus, SPK_BUS_MMIO, 0x1000, 1, &v, NULL), 0);
	assert_true(d.offset == 0);
	assert_int_equal(spk_bus_read(bus, SPK_BUS_MMIO, 0x10ff, 1, &v, NULL), 0);
	assert_true(d.offset == 0xff);
	assert_int_equal(spk_bus_read(bus, SPK_BUS_MMIO, 0x1100, 1, &v, NULL), -ENOENT);
	assert_int_equal(spk_bus_write(bus, SPK_BUS_MMIO, 0x1100, 1, 0, NULL), -ENOENT);
	assert_int_equal(spk_bus_write(bus, SPK_BUS_MMIO, 0xfff, 1, 0, NULL), -ENOENT);
	assert_int_equal(d.reads, 2);
	assert_int_equal(d.writes, 0);
}

static void test_straddle_is_logged_miss(void **state)
{
	struct spk_bus *bus = *state;
	struct dev d = {0};
	struct capture cap = {0};
	uint64_t v = 0;

	assert_int_equal(
	    spk_bus_register(bus, SPK_BUS_MMIO, 0xd0000000, 0x1000, "gpu", &dev_ops, &d, 0), 0);
	spk_log_set(capture_log, &cap, SPK_LOG_WARN);
	/* The last 4 bytes fit; one byte further does not. */
	assert_int_equal(spk_bus_read(bus, SPK_BUS_MMIO, 0xd0000ffc, 4, &v, NULL), 0);
	assert_int_equal(cap.warnings, 0);
	assert_int_equal(spk_bus_read(bus, SPK_BUS_MMIO, 0xd0000ffd, 4, &v, NULL), -ENOENT);
	assert_int_equal(cap.warnings, 1);
	assert_non_null(strstr(cap.last, "\"gpu\""));
	assert_non_null(strstr(cap.last, "MMIO"));
	assert_non_null(strstr(cap.last, "0xd0000ffd"));
	assert_non_null(strstr(cap.last, "width 4"));
	assert_int_equal(spk_bus_write(bus, SPK_BUS_MMIO, 0xd0000fff, 2, 1, NULL), -ENOENT);
	assert_int_equal(cap.warnings, 2);
	spk_log_set(NULL, NULL, SPK_LOG_WARN);
	/* The device never saw the clipped accesses. */
	assert_int_equal(d.reads, 1);
	assert_int_equal(d.writes, 0);
}

static void test_straddle_log_is_rate_limited(void **state)
{
	struct spk_bus *bus = *state;
	struct dev d = {0};
	struct capture cap = {0};

	assert_int_equal(spk_bus_register(bus, SPK_BUS_PIO, 0x70, 2, "rtc", &dev_ops, &d, 0), 0);
	assert_int_equal(spk_bus_register(bus, SPK_BUS_PIO, 0x80, 1, "post", &dev_ops, &d, 0), 0);
	spk_log_set(capture_log, &cap, SPK_LOG_WARN);
	for (int i = 0; i < 3000; i++)
		assert_int_equal(spk_bus_write(bus, SPK_BUS_PIO, 0x71, 2, 0, NULL), -ENOENT);
	/* Accesses 1-8, 1024 and 2048. */
	assert_int_equal(cap.warnings, 10);
	assert_non_null(strstr(cap.last, "#2048"));
	/* The budget is per device. */
	assert_int_equal(spk_bus_write(bus, SPK_BUS_PIO, 0x80, 2, 0, NULL), -ENOENT);
	assert_int_equal(cap.warnings, 11);
	assert_non_null(strstr(cap.last, "\"post\""));
	/* A plain miss (no device at all) is not a warning. */
	assert_int_equal(spk_bus_write(bus, SPK_BUS_PIO, 0x90, 1, 0, NULL), -ENOENT);
	assert_int_equal(cap.warnings, 11);
	spk_log_set(NULL, NULL, SPK_LOG_WARN);
}

static void test_offsets_and_widths(void **state)
{
	struct spk_bus *bus = *state;
	struct dev d = {.read_value = 0x8877665544332211};
	struct spk_bus_access who = {.vcpu = 5, .addr = 0};
	static const unsigned widths[] = {1, 2, 4, 8};
	static const uint64_t masks[] = {0xff, 0xffff, 0xffffffff, UINT64_MAX};
	uint64_t v;

	assert_int_equal(
	    spk_bus_register(bus, SPK_BUS_MMIO, 0xfee00000, 0x1000, "apic", &dev_ops, &d, 0), 0);
	for (int i = 0; i < 4; i++) {
		uint64_t addr = 0xfee00000 + 0x10 * (i + 1);

		v = 0;
		assert_int_equal(spk_bus_read(bus, SPK_BUS_MMIO, addr, widths[i], &v, &who), 0);
		assert_true(v == (d.read_value & masks[i]));
		assert_true(d.offset == 0x10u * (i + 1));
		assert_int_equal(d.width, widths[i]);
		assert_int_equal(d.who.vcpu, 5);
		assert_true(d.who.addr == addr);

		assert_int_equal(
		    spk_bus_write(bus, SPK_BUS_MMIO, addr + 8, widths[i], 0xf1f2f3f4f5f6f7f8, NULL),
		    0);
		/* Written values reach the device zero-extended to the width. */
		assert_true(d.value == (0xf1f2f3f4f5f6f7f8 & masks[i]));
		assert_true(d.offset == 0x10u * (i + 1) + 8);
		assert_int_equal(d.width, widths[i]);
		assert_int_equal(d.who.vcpu, UINT32_MAX);
		assert_true(d.who.addr == addr + 8);
	}
	assert_int_equal(d.reads, 4);
	assert_int_equal(d.writes, 4);
}

static void test_sysreg_is_per_register(void **state)
{
	struct spk_bus *bus = *state;
	struct dev d = {.read_value = 0x1122334455667788};
	uint64_t v = 0;

	/* Two MSRs; an 8-byte access covers one register number, not eight. */
	assert_int_equal(
	    spk_bus_register(bus, SPK_BUS_SYSREG, 0x40001240, 2, "msr-dev", &dev_ops, &d, 0), 0);
	assert_int_equal(spk_bus_read(bus, SPK_BUS_SYSREG, 0x40001241, 8, &v, NULL), 0);
	assert_true(v == 0x1122334455667788);
	assert_true(d.offset == 1);
	assert_int_equal(spk_bus_write(bus, SPK_BUS_SYSREG, 0x40001240, 8, 0xabcdef, NULL), 0);
	assert_true(d.offset == 0 && d.value == 0xabcdef);
	assert_int_equal(spk_bus_read(bus, SPK_BUS_SYSREG, 0x40001242, 8, &v, NULL), -ENOENT);
	assert_int_equal(spk_bus_read(bus, SPK_BUS_SYSREG, 0x4000123f, 8, &v, NULL), -ENOENT);
	/* Widths are still checked. */
	assert_int_equal(spk_bus_read(bus, SPK_BUS_SYSREG, 0x40001240, 3, &v, NULL), -EINVAL);
	/* The last register number is reachable with any width. */
	assert_int_equal(
	    spk_bus_register(bus, SPK_BUS_SYSREG, UINT64_MAX, 1, "top", &dev_ops, &d, 0), 0);
	assert_int_equal(spk_bus_read(bus, SPK_BUS_SYSREG, UINT64_MAX, 8, &v, NULL), 0);
	assert_int_equal(d.reads, 2);
}

static void test_bad_width(void **state)
{
	struct spk_bus *bus = *state;
	struct dev d = {0};
	static const unsigned bad[] = {0, 3, 5, 6, 7, 16, 0xffffffff};
	uint64_t v = 0;

	assert_int_equal(spk_bus_register(bus, SPK_BUS_PIO, 0, 0x100, "wide", &dev_ops, &d, 0), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(spk_bus_read(bus, SPK_BUS_PIO, 0x10, bad[i], &v, NULL), -EINVAL);
		assert_int_equal(spk_bus_write(bus, SPK_BUS_PIO, 0x10, bad[i], 0, NULL), -EINVAL);
	}
	assert_int_equal(d.reads + d.writes, 0);
	assert_int_equal(spk_bus_read(bus, SPK_BUS__COUNT, 0x10, 1, &v, NULL), -EINVAL);
	assert_int_equal(spk_bus_read(bus, SPK_BUS_PIO, 0x10, 1, NULL, NULL), -EINVAL);
	assert_int_equal(spk_bus_read(NULL, SPK_BUS_PIO, 0x10, 1, &v, NULL), -EINVAL);
}

static void test_null_callbacks(void **state)
{
	struct spk_bus *bus = *state;
	uint64_t v;

	assert_int_equal(spk_bus_register(bus, SPK_BUS_PIO, 0x80, 8, "void", &null_ops, NULL, 0),
	                 0);
	v = 0;
	assert_int_equal(spk_bus_read(bus, SPK_BUS_PIO, 0x80, 1, &v, NULL), 0);
	assert_true(v == 0xff);
	assert_int_equal(spk_bus_read(bus, SPK_BUS_PIO, 0x80, 2, &v, NULL), 0);
	assert_true(v == 0xffff);
	assert_int_equal(spk_bus_read(bus, SPK_BUS_PIO, 0x80, 4, &v, NULL), 0);
	assert_true(v == 0xffffffff);
	assert_int_equal(spk_bus_read(bus, SPK_BUS_PIO, 0x80, 8, &v, NULL), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(spk_bus_write(bus, SPK_BUS_PIO, 0x80, 4, 1, NULL), 0);
}

static void test_miss_policies(void **state)
{
	struct spk_bus *bus = *state;

	assert_int_equal(spk_bus_miss_policy(bus, SPK_BUS_MMIO), SPK_MISS_FAULT);
	assert_int_equal(spk_bus_miss_policy(bus, SPK_BUS_PIO), SPK_MISS_IGNORE);
	assert_int_equal(spk_bus_miss_policy(bus, SPK_BUS_SYSREG), SPK_MISS_EXIT);

	assert_int_equal(spk_bus_set_miss_policy(bus, SPK_BUS_MMIO, SPK_MISS_FATAL), 0);
	assert_int_equal(spk_bus_set_miss_policy(bus, SPK_BUS_PIO, SPK_MISS_EXIT), 0);
	assert_int_equal(spk_bus_set_miss_policy(bus, SPK_BUS_SYSREG, SPK_MISS_IGNORE), 0);
	assert_int_equal(spk_bus_miss_policy(bus, SPK_BUS_MMIO), SPK_MISS_FATAL);
	assert_int_equal(spk_bus_miss_policy(bus, SPK_BUS_PIO), SPK_MISS_EXIT);
	assert_int_equal(spk_bus_miss_policy(bus, SPK_BUS_SYSREG), SPK_MISS_IGNORE);

	assert_int_equal(spk_bus_set_miss_policy(bus, SPK_BUS_PIO, (enum spk_bus_miss)9), -EINVAL);
	assert_int_equal(spk_bus_miss_policy(bus, SPK_BUS_PIO), SPK_MISS_EXIT);
	assert_int_equal(spk_bus_set_miss_policy(bus, SPK_BUS__COUNT, SPK_MISS_EXIT), -EINVAL);
	assert_int_equal(spk_bus_set_miss_policy(NULL, SPK_BUS_PIO, SPK_MISS_EXIT), -EINVAL);
	/* Nonsense questions get the strictest answer. */
	assert_int_equal(spk_bus_miss_policy(bus, SPK_BUS__COUNT), SPK_MISS_FATAL);
	assert_int_equal(spk_bus_miss_policy(NULL, SPK_BUS_PIO), SPK_MISS_FATAL);
}

static void test_space_names(void **unused)
{
	assert_string_equal(spk_bus_space_name(SPK_BUS_MMIO), "MMIO");
	assert_string_equal(spk_bus_space_name(SPK_BUS_PIO), "PIO");
	assert_string_equal(spk_bus_space_name(SPK_BUS_SYSREG), "SYSREG");
	assert_string_equal(spk_bus_space_name(SPK_BUS__COUNT), "UNKNOWN");
}

/* ---- many devices ---- */

#define MANY 500

struct walk {
	int n;
	uint64_t prev_end;
	bool sorted;
};

static void walk_fn(uint64_t base, uint64_t len, const char *name, void *ctx)
{
	struct walk *w = ctx;
	char want[32];

	if (w->n > 0 && base < w->prev_end)
		w->sorted = false;
	snprintf(want, sizeof(want), "dev%" PRIu64, base / 0x100);
	if (strcmp(name, want) != 0 || len != 0x10)
		w->sorted = false;
	w->prev_end = base + len;
	w->n++;
}

static void test_many_out_of_order(void **state)
{
	struct spk_bus *bus = *state;
	static struct dev devs[MANY];
	struct walk w = {.sorted = true};
	uint64_t v;

	/* 7 is coprime with MANY: i -> 7i mod MANY visits every slot once. */
	for (int i = 0; i < MANY; i++) {
		int slot = (7 * i) % MANY;
		char name[32];

		devs[slot].id = slot;
		devs[slot].read_value = (uint64_t)slot;
		snprintf(name, sizeof(name), "dev%d", slot);
		assert_int_equal(spk_bus_register(bus, SPK_BUS_MMIO, (uint64_t)slot * 0x100, 0x10,
		                                  name, &dev_ops, &devs[slot], 0),
		                 0);
	}
	spk_bus_freeze(bus);
	for (int slot = 0; slot < MANY; slot++) {
		uint64_t base = (uint64_t)slot * 0x100;
		char name[32];

		snprintf(name, sizeof(name), "dev%d", slot);
		assert_string_equal(spk_bus_owner(bus, SPK_BUS_MMIO, base + 0xf), name);
		assert_null(spk_bus_owner(bus, SPK_BUS_MMIO, base + 0x10));
		assert_int_equal(spk_bus_read(bus, SPK_BUS_MMIO, base + 8, 8, &v, NULL), 0);
		assert_true(v == (uint64_t)slot);
		assert_int_equal(devs[slot].reads, 1);
		assert_true(devs[slot].offset == 8);
	}
	spk_bus_for_each(bus, SPK_BUS_MMIO, walk_fn, &w);
	assert_int_equal(w.n, MANY);
	assert_true(w.sorted);
	w.n = 0;
	spk_bus_for_each(bus, SPK_BUS_PIO, walk_fn, &w);
	assert_int_equal(w.n, 0);
}

/* ---- locking ---- */

#define HAMMER 200000

struct counter {
	volatile uint64_t count;
	uint64_t spins;
};

/* A deliberately racy read-modify-write: only the device lock saves it. */
static void counter_write(void *opaque, uint64_t offset, unsigned width, uint64_t value,
                          const struct spk_bus_access *who)
{
	struct counter *c = opaque;
	uint64_t v = c->count;

	for (volatile int i = 0; i < 5; i++)
		c->spins++;
	c->count = v + value;
}

static uint64_t counter_read(void *opaque, uint64_t offset, unsigned width,
                             const struct spk_bus_access *who)
{
	struct counter *c = opaque;

	return c->count;
}

static const struct spk_bus_ops counter_ops = {.read = counter_read, .write = counter_write};

struct hammer {
	struct spk_bus *bus;
	uint32_t vcpu;
	int failures;
};

static void *hammer_thread(void *arg)
{
	struct hammer *h = arg;
	struct spk_bus_access who = {.vcpu = h->vcpu};

	for (int i = 0; i < HAMMER; i++) {
		/* Two registers of one device: the lock is per device, not per address. */
		if (spk_bus_write(h->bus, SPK_BUS_MMIO, 0x1000 + 4 * (i & 1), 4, 1, &who) != 0)
			h->failures++;
	}
	return NULL;
}

static void run_hammer(struct spk_bus *bus)
{
	struct hammer h[2] = {{bus, 0, 0}, {bus, 1, 0}};
	pthread_t t[2];

	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer_thread, &h[i]), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	assert_int_equal(h[0].failures + h[1].failures, 0);
}

static void test_concurrent_writes_are_serialised(void **state)
{
	struct spk_bus *bus = *state;
	struct counter c = {0};
	uint64_t v = 0;

	assert_int_equal(spk_bus_register(bus, SPK_BUS_MMIO, 0x1000, 8, "ctr", &counter_ops, &c, 0),
	                 0);
	/* Before the freeze (locked lookups) and after it (lock-free). */
	run_hammer(bus);
	assert_true(c.count == 2 * HAMMER);
	spk_bus_freeze(bus);
	run_hammer(bus);
	assert_true(c.count == 4 * HAMMER);
	assert_int_equal(spk_bus_read(bus, SPK_BUS_MMIO, 0x1000, 8, &v, NULL), 0);
	assert_true(v == 4 * HAMMER);
}

/*
 * Whether a callback runs under its device lock: from inside the callback,
 * another thread accesses the same device; it can only finish while the
 * callback still runs if no lock is held.
 */
struct probe {
	struct spk_bus *bus;
	uint64_t base;
	bool other_finished_inside;
	bool pending; /* the other thread is still to be joined */
	pthread_t other;
	int calls;
};

static void *probe_thread(void *arg)
{
	struct probe *p = arg;

	spk_bus_write(p->bus, SPK_BUS_PIO, p->base + 1, 1, 0, NULL);
	return NULL;
}

static void probe_write(void *opaque, uint64_t offset, unsigned width, uint64_t value,
                        const struct spk_bus_access *who)
{
	struct probe *p = opaque;
	struct timespec deadline;

	p->calls++;
	if (offset != 0)
		return;
	if (pthread_create(&p->other, NULL, probe_thread, p) != 0)
		return;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_nsec += 200 * 1000 * 1000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	if (pthread_timedjoin_np(p->other, NULL, &deadline) == 0) {
		p->other_finished_inside = true;
		return;
	}
	/* Blocked on our lock: it finishes once we return. */
	p->pending = true;
}

static const struct spk_bus_ops probe_ops = {.write = probe_write};

static void test_lock_and_lockless(void **state)
{
	struct spk_bus *bus = *state;
	struct probe locked = {.bus = bus, .base = 0x10};
	struct probe lockless = {.bus = bus, .base = 0x20};

	assert_int_equal(
	    spk_bus_register(bus, SPK_BUS_PIO, 0x10, 2, "locked", &probe_ops, &locked, 0), 0);
	assert_int_equal(spk_bus_register(bus, SPK_BUS_PIO, 0x20, 2, "lockless", &probe_ops,
	                                  &lockless, SPK_BUS_LOCKLESS),
	                 0);
	spk_bus_freeze(bus);
	assert_int_equal(spk_bus_write(bus, SPK_BUS_PIO, 0x10, 1, 0, NULL), 0);
	assert_false(locked.other_finished_inside);
	assert_int_equal(spk_bus_write(bus, SPK_BUS_PIO, 0x20, 1, 0, NULL), 0);
	assert_true(lockless.other_finished_inside);
	assert_false(lockless.pending);
	assert_int_equal(lockless.calls, 2);
	/* The locked device's prober got in after the callback returned. */
	assert_true(locked.pending);
	assert_int_equal(pthread_join(locked.other, NULL), 0);
	assert_int_equal(locked.calls, 2);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_overlap_names_both),
	    T(test_register_refusals),
	    T(test_range_ending_at_top),
	    T(test_freeze),
	    T(test_lookup_edges),
	    T(test_straddle_is_logged_miss),
	    T(test_straddle_log_is_rate_limited),
	    T(test_offsets_and_widths),
	    T(test_sysreg_is_per_register),
	    T(test_bad_width),
	    T(test_null_callbacks),
	    T(test_miss_policies),
	    cmocka_unit_test(test_space_names),
	    T(test_many_out_of_order),
	    T(test_concurrent_writes_are_serialised),
	    T(test_lock_and_lockless),
	};

	spk_bus_free(NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
#undef T
}
