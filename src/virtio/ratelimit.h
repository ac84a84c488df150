/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The token buckets behind struct spk_rate_limit (sparkler/ratelimit.h),
 * and a limiter that wakes a virtio queue when its buckets have refilled:
 * a timerfd on the device's event loop. Every call but spk_rl_free and the
 * timer's own handler is made under the device lock.
 */
#ifndef SPK_VIRTIO_RATELIMIT_H
#define SPK_VIRTIO_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include <sparkler/evloop.h>
#include <sparkler/ratelimit.h>
#include <sparkler/virtio.h>

struct spk_tbucket {
	uint64_t size, refill_ns; /* size 0: unlimited */
	uint64_t burst;           /* one_time_burst left */
	int64_t budget;           /* may go below 0: a debt the refill pays first */
	uint64_t last_ns;         /* the refill was computed up to here */
};

/* A bad limit (a size without a refill time, one too long): -EINVAL with
 * a message naming what, e.g. "bandwidth". */
int spk_rl_check(const struct spk_rate_limit *l);

/* The bucket with cfg's values, full (plus its burst), at now_ns. */
void spk_tbucket_init(struct spk_tbucket *b, const struct spk_token_bucket *cfg, uint64_t now_ns);
/* Refill up to now_ns. */
void spk_tbucket_refill(struct spk_tbucket *b, uint64_t now_ns);
/* Whether a request may start now (burst or budget above 0). */
bool spk_tbucket_ready(const struct spk_tbucket *b);
/* Spend n tokens: the burst first, then the budget, into debt if need be. */
void spk_tbucket_spend(struct spk_tbucket *b, uint64_t n);
/* Nanoseconds until the bucket is ready again (0: it is). */
uint64_t spk_tbucket_wait_ns(const struct spk_tbucket *b);

struct spk_ratelimiter {
	struct spk_tbucket bw, ops;
	bool limited;  /* either bucket has a size */
	bool blocked;  /* waiting for the timer */
	int tfd;       /* -1 until the first limit */
	struct spk_evloop *loop;
	struct spk_virtio *vd;
	unsigned queue; /* kicked when the buckets have refilled */
	struct spk_rate_limit_stats st;
};

/* No limit; the queue of vd that the refill wakes. */
void spk_rl_init(struct spk_ratelimiter *rl, struct spk_evloop *loop, struct spk_virtio *vd,
                 unsigned queue);
/* Set (or change, while running) the limit: the buckets start full again,
 * as Firecracker's PATCH makes new ones; a blocked queue is kicked. 0 or
 * -errno (-EINVAL: a bad limit or no event loop to refill on). */
int spk_rl_set(struct spk_ratelimiter *rl, const struct spk_rate_limit *l);
/* May a request start? When not, the limiter arms its timer (once) and
 * the caller stops taking requests; the refill kicks the queue. */
bool spk_rl_admit(struct spk_ratelimiter *rl);
/* A request that started costs ops operations and bytes bytes. */
void spk_rl_charge(struct spk_ratelimiter *rl, uint64_t ops, uint64_t bytes);
/* Take the timer off the loop and close it (not under the device lock). */
void spk_rl_free(struct spk_ratelimiter *rl);

#endif
