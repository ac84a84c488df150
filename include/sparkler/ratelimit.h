/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Rate limits for devices, as Firecracker has them: two token buckets, one
 * for bytes and one for operations (requests or frames). A bucket holds at
 * most `size` tokens and refills completely in `refill_time_ms`; tokens
 * start full, plus `one_time_burst` extra tokens that are spent first and
 * never come back. A device with an empty bucket takes no new request
 * until it has refilled enough (a timer on the device's event loop): it
 * never blocks a vCPU. A request may cost more than what is left (a big
 * read): it goes through and leaves the bucket in debt, which the refill
 * pays back first, so over any stretch of time a device moves at most
 * size + one_time_burst + (the largest request) + rate x time.
 */
#ifndef SPARKLER_RATELIMIT_H
#define SPARKLER_RATELIMIT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Refill times are at most this many milliseconds (about 11.6 days), so
 * that every product in the arithmetic fits in 128 bits. */
#define SPK_RATE_REFILL_MAX_MS (1000ull * 1000 * 1000)

struct spk_token_bucket {
	uint64_t size;           /* tokens; 0: no limit on this bucket */
	uint64_t one_time_burst; /* extra tokens at the start, spent first */
	uint64_t refill_time_ms; /* 1 to SPK_RATE_REFILL_MAX_MS when size is not 0 */
};

struct spk_rate_limit {
	struct spk_token_bucket bandwidth; /* bytes */
	struct spk_token_bucket ops;       /* requests (virtio-blk), frames (virtio-net) */
};

struct spk_rate_limit_stats {
	uint64_t throttled;   /* times the device stopped taking requests for a refill */
	uint64_t bytes, ops;  /* what went through the limiter */
};

#ifdef __cplusplus
}
#endif

#endif
