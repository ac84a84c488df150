/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Rate-limited log lines for the legacy devices. Every register write is
 * guest input, and a hostile guest can write a bad value a million times a
 * second: each device logs at most SPK_DEV_LOG_BURST lines per
 * SPK_DEV_LOG_WINDOW_S seconds, then says how many it dropped.
 *
 * Not thread-safe on its own: call under the device's lock.
 */
#ifndef SPK_DEVICES_DEVLOG_H
#define SPK_DEVICES_DEVLOG_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <sparkler/log.h>

#define SPK_DEV_LOG_BURST    5
#define SPK_DEV_LOG_WINDOW_S 10

struct spk_dev_ratelimit {
	int64_t window_start; /* seconds, CLOCK_MONOTONIC; 0: never logged */
	unsigned printed;     /* lines in this window */
	unsigned dropped;     /* lines refused in this window */
};

/*
 * May the caller log a line now? On the first line of a new window, first
 * reports how many lines the previous window dropped (name says whose).
 */
static inline bool spk_dev_log_ok(struct spk_dev_ratelimit *rl, const char *name)
{
	struct timespec ts;
	int64_t now;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (int64_t)ts.tv_sec + 1; /* never 0, so 0 can mean "unset" */
	if (rl->window_start == 0 || now - rl->window_start >= SPK_DEV_LOG_WINDOW_S) {
		if (rl->dropped)
			spk_log(SPK_LOG_WARN, "%s: %u log lines suppressed", name, rl->dropped);
		rl->window_start = now;
		rl->printed = 0;
		rl->dropped = 0;
	}
	if (rl->printed >= SPK_DEV_LOG_BURST) {
		rl->dropped++;
		return false;
	}
	rl->printed++;
	return true;
}

/* spk_dev_log(&dev->rl, "com1", SPK_LOG_WARN, "com1: bad value 0x%x", v) */
#define spk_dev_log(rl, name, level, ...)                                                          \
	do {                                                                                       \
		if (spk_dev_log_ok((rl), (name)))                                                  \
			spk_log((level), __VA_ARGS__);                                             \
	} while (0)

#endif
