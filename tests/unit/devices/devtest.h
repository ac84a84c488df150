/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared by the device tests: a fake interrupt line, a fake stop hook, a
 * log capture, a seeded PRNG and accessors that call a device's bus ops
 * the way the bus does (offset inside the range, absolute address in
 * who->addr). Include after cmocka.h.
 */
#ifndef SPK_TESTS_DEVTEST_H
#define SPK_TESTS_DEVTEST_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <sparkler/bus.h>
#include <sparkler/devices.h>
#include <sparkler/log.h>

#include "devices/devlog.h" /* SPK_DEV_LOG_BURST */

/* ---- interrupt line ---- */

struct fake_irq {
	bool level;
	unsigned calls;     /* every set() */
	unsigned rises;     /* 0 -> 1 */
	unsigned falls;     /* 1 -> 0 */
	unsigned redundant; /* set() that did not change the level */
	uint32_t gsi;
};

static inline void fake_irq_set(void *ctx, uint32_t gsi, bool level)
{
	struct fake_irq *f = ctx;

	f->calls++;
	f->gsi = gsi;
	if (level == f->level)
		f->redundant++;
	else if (level)
		f->rises++;
	else
		f->falls++;
	f->level = level;
}

static inline struct spk_irq_line fake_line(struct fake_irq *f, uint32_t gsi)
{
	return (struct spk_irq_line){.set = fake_irq_set, .ctx = f, .gsi = gsi};
}

/* ---- stop hook ---- */

struct fake_stop {
	unsigned down, reset, other;
};

static inline void fake_stop_fn(void *ctx, enum spk_exit_kind kind)
{
	struct fake_stop *s = ctx;

	if (kind == SPK_EXIT_SYSTEM_DOWN)
		s->down++;
	else if (kind == SPK_EXIT_RESET)
		s->reset++;
	else
		s->other++;
}

/* ---- bus accesses ---- */

static inline uint64_t dev_rd(const struct spk_bus_ops *ops, void *dev, uint64_t base, uint64_t off,
                              unsigned width)
{
	struct spk_bus_access who = {.vcpu = 0, .addr = base + off};

	return ops->read(dev, off, width, &who);
}

static inline void dev_wr(const struct spk_bus_ops *ops, void *dev, uint64_t base, uint64_t off,
                          unsigned width, uint64_t value)
{
	struct spk_bus_access who = {.vcpu = 0, .addr = base + off};

	ops->write(dev, off, width, value, &who);
}

/* ---- log capture ---- */

struct log_capture {
	unsigned lines, warnings;
	char last[512];
};

static inline void capture_log(enum spk_log_level level, const char *msg, void *opaque)
{
	struct log_capture *c = opaque;

	c->lines++;
	if (level <= SPK_LOG_WARN)
		c->warnings++;
	snprintf(c->last, sizeof(c->last), "%s", msg);
}

static inline void log_capture_start(struct log_capture *c)
{
	memset(c, 0, sizeof(*c));
	spk_log_set(capture_log, c, SPK_LOG_DEBUG);
}

static inline void log_capture_stop(void)
{
	spk_log_set(NULL, NULL, SPK_LOG_WARN);
}

/* ---- PRNG (xorshift64*), fixed seeds for reproducible runs ---- */

static inline uint64_t prng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

static inline unsigned prng_width(uint64_t *s)
{
	static const unsigned widths[4] = {1, 2, 4, 8};

	return widths[prng_next(s) % 4];
}

/* The value a write of width carries: zero-extended, as the bus does. */
static inline uint64_t prng_value(uint64_t *s, unsigned width)
{
	uint64_t v = prng_next(s);

	return width == 8 ? v : v & ((1ull << (8 * width)) - 1);
}

#define HOSTILE_ITERATIONS 20000

#endif
