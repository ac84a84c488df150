// SPDX-License-Identifier: Apache-2.0
/*
 * The boot timer, as Firecracker's: one MMIO page where the guest writes
 * the byte SPK_PC_BOOT_TIMER_MAGIC at offset 0 when it reaches init. The
 * first such write reports the time since cfg->start; everything else
 * (other values, offsets, widths, later writes) is ignored, and reads
 * return 0. A guest can therefore make at most one report happen.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sparkler/devices.h>
#include <sparkler/snapshot.h>
#include <sparkler/platform.h>

#include "core/internal.h"
#include "devices/devlog.h"

#define NSEC_PER_SEC 1000000000LL

struct spk_boot_timer {
	pthread_mutex_t lock;
	struct spk_timespec start;
	void (*report)(void *ctx, uint64_t ns_since_start);
	void *report_ctx;
	bool reported;
	struct spk_dev_ratelimit rl;
};

/* Nanoseconds from start to now, 0 if now is not later. */
static uint64_t ns_since(const struct spk_timespec *start)
{
	struct timespec now;
	int64_t secs, ns;

	clock_gettime(CLOCK_MONOTONIC, &now);
	/* start comes from the embedder and may be anything: saturate. */
	if (__builtin_sub_overflow((int64_t)now.tv_sec, (int64_t)start->tv_sec, &secs))
		return start->tv_sec > 0 ? 0 : UINT64_MAX;
	if (__builtin_mul_overflow(secs, NSEC_PER_SEC, &ns))
		return secs < 0 ? 0 : UINT64_MAX;
	if (__builtin_add_overflow(ns, (int64_t)(now.tv_nsec - start->tv_nsec), &ns))
		return UINT64_MAX;
	return ns > 0 ? (uint64_t)ns : 0;
}

static uint64_t timer_read(void *opaque, uint64_t offset, unsigned width,
                           const struct spk_bus_access *who)
{
	return 0;
}

static void timer_write(void *opaque, uint64_t offset, unsigned width, uint64_t value,
                        const struct spk_bus_access *who)
{
	struct spk_boot_timer *t = opaque;
	uint64_t ns = ns_since(&t->start); /* first: the report is about now */
	bool first = false;

	pthread_mutex_lock(&t->lock);
	if (offset == 0 && width == 1 && value == SPK_PC_BOOT_TIMER_MAGIC) {
		first = !t->reported;
		t->reported = true;
	} else {
		spk_dev_log(&t->rl, "boot-timer", SPK_LOG_DEBUG,
		            "boot-timer: %u-byte write of 0x%llx at offset 0x%llx ignored", width,
		            (unsigned long long)value, (unsigned long long)offset);
	}
	pthread_mutex_unlock(&t->lock);
	if (first && t->report)
		t->report(t->report_ctx, ns);
}

static const struct spk_bus_ops timer_ops = {.read = timer_read, .write = timer_write};

const struct spk_bus_ops *spk_boot_timer_ops(void)
{
	return &timer_ops;
}

int spk_boot_timer_new(const struct spk_boot_timer_config *cfg, struct spk_boot_timer **out)
{
	struct spk_boot_timer *t;
	int rc;

	if (!out)
		return spk_fail(EINVAL, "boot-timer: no place for the device");
	*out = NULL;
	if (!cfg)
		return spk_fail(EINVAL, "boot-timer: no config");
	if (cfg->start.tv_nsec < 0 || cfg->start.tv_nsec >= NSEC_PER_SEC)
		return spk_fail(EINVAL, "boot-timer: start has %ld nanoseconds",
		                (long)cfg->start.tv_nsec);
	t = calloc(1, sizeof(*t));
	if (!t)
		return spk_fail(ENOMEM, "boot-timer: out of memory");
	rc = pthread_mutex_init(&t->lock, NULL);
	if (rc) {
		free(t);
		return spk_fail(rc, "boot-timer: mutex: %s", strerror(rc));
	}
	t->start = cfg->start;
	t->report = cfg->report;
	t->report_ctx = cfg->report_ctx;
	*out = t;
	return 0;
}

void spk_boot_timer_free(struct spk_boot_timer *t)
{
	if (!t)
		return;
	pthread_mutex_destroy(&t->lock);
	free(t);
}

/* ---- state (include/sparkler/snapshot.h) ---- */

/* Only whether the guest reported: the start time is this process's. */
static int bt_save(void *opaque, struct spk_snap_writer *w)
{
	struct spk_boot_timer *t = opaque;

	pthread_mutex_lock(&t->lock);
	spk_snap_put_u8(w, "reported", t->reported);
	pthread_mutex_unlock(&t->lock);
	return spk_snap_writer_error(w);
}

static int bt_load(void *opaque, struct spk_snap_reader *r)
{
	struct spk_boot_timer *t = opaque;
	bool reported;
	int rc;

	if ((rc = spk_snap_get_bool(r, "reported", &reported)) || (rc = spk_snap_reader_done(r)))
		return rc;
	pthread_mutex_lock(&t->lock);
	t->reported = reported;
	pthread_mutex_unlock(&t->lock);
	return 0;
}

static const struct spk_dev_state_ops bt_state = {"boot_timer", 1, bt_save, bt_load};

const struct spk_dev_state_ops *spk_boot_timer_state_ops(void)
{
	return &bt_state;
}
