/* SPDX-License-Identifier: Apache-2.0 */
/* Token buckets and the refill timer (ratelimit.h). */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "core/internal.h"
#include "virtio/ratelimit.h"

#define NS_PER_MS 1000000ull

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* ---- one bucket ------------------------------------------------------------------------ */

static int check_bucket(const struct spk_token_bucket *b, const char *what)
{
	if (!b->size)
		return 0;
	if (b->size > INT64_MAX || b->one_time_burst > INT64_MAX)
		return spk_fail(EINVAL, "rate limit: %s: size and one_time_burst are at most %lld",
		                what, (long long)INT64_MAX);
	if (b->refill_time_ms == 0 || b->refill_time_ms > SPK_RATE_REFILL_MAX_MS)
		return spk_fail(EINVAL, "rate limit: %s: refill_time of %llu ms (need 1 to %llu)",
		                what, (unsigned long long)b->refill_time_ms,
		                (unsigned long long)SPK_RATE_REFILL_MAX_MS);
	return 0;
}

int spk_rl_check(const struct spk_rate_limit *l)
{
	int rc;

	if (!l)
		return spk_fail(EINVAL, "rate limit: NULL");
	if ((rc = check_bucket(&l->bandwidth, "bandwidth")) < 0)
		return rc;
	return check_bucket(&l->ops, "ops");
}

void spk_tbucket_init(struct spk_tbucket *b, const struct spk_token_bucket *cfg, uint64_t now)
{
	*b = (struct spk_tbucket){.size = cfg->size, .refill_ns = cfg->refill_time_ms * NS_PER_MS,
	                          .burst = cfg->one_time_burst, .budget = (int64_t)cfg->size,
	                          .last_ns = now};
}

void spk_tbucket_refill(struct spk_tbucket *b, uint64_t now)
{
	if (!b->size || now <= b->last_ns)
		return;
	/* tokens = elapsed * size / refill, in 128 bits (size < 2^63 and
	 * elapsed < 2^64: the product fits); the time those tokens stand
	 * for is taken off, so no fraction of a token is lost */
	unsigned __int128 tokens = (unsigned __int128)(now - b->last_ns) * b->size / b->refill_ns;
	uint64_t room = (uint64_t)((int64_t)b->size - b->budget); /* budget <= size */

	if (tokens >= room) {
		b->budget = (int64_t)b->size;
		b->last_ns = now;
		return;
	}
	b->budget += (int64_t)tokens;
	b->last_ns += (uint64_t)(tokens * b->refill_ns / b->size);
}

bool spk_tbucket_ready(const struct spk_tbucket *b)
{
	return !b->size || b->burst > 0 || b->budget > 0;
}

void spk_tbucket_spend(struct spk_tbucket *b, uint64_t n)
{
	if (!b->size)
		return;
	if (b->burst >= n) {
		b->burst -= n;
		return;
	}
	n -= b->burst;
	b->burst = 0;
	/* the debt is bounded: one request's cost below a full bucket
	 * (requests are at most a few MiB; 2^62 keeps it from wrapping) */
	if (n > (uint64_t)INT64_MAX / 2)
		n = (uint64_t)INT64_MAX / 2;
	b->budget = b->budget - (int64_t)n < INT64_MIN / 2 ? INT64_MIN / 2 : b->budget - (int64_t)n;
}

uint64_t spk_tbucket_wait_ns(const struct spk_tbucket *b)
{
	if (spk_tbucket_ready(b))
		return 0;
	/* one token: (1 - budget) tokens at size per refill_ns, rounded up */
	unsigned __int128 need = (unsigned __int128)(1 - b->budget) * b->refill_ns;
	unsigned __int128 ns = (need + b->size - 1) / b->size;

	return ns > UINT64_MAX / 2 ? UINT64_MAX / 2 : (uint64_t)ns;
}

/* ---- the limiter -------------------------------------------------------------------------- */

static void on_refill(void *opaque, int fd, uint32_t events)
{
	struct spk_ratelimiter *rl = opaque;
	uint64_t n;
	bool kick;

	if (read(fd, &n, sizeof(n)) < 0) {
		/* EAGAIN: a change disarmed it meanwhile */
	}
	spk_virtio_lock(rl->vd);
	kick = rl->blocked;
	rl->blocked = false;
	spk_virtio_unlock(rl->vd);
	if (kick)
		spk_virtio_kick(rl->vd, rl->queue);
}

void spk_rl_init(struct spk_ratelimiter *rl, struct spk_evloop *loop, struct spk_virtio *vd,
                 unsigned queue)
{
	*rl = (struct spk_ratelimiter){.tfd = -1, .loop = loop, .vd = vd, .queue = queue};
}

static int make_timer(struct spk_ratelimiter *rl)
{
	int fd, rc;

	if (rl->tfd >= 0)
		return 0;
	if (!rl->loop)
		return spk_fail(EINVAL, "rate limit: the device has no event loop to refill on");
	fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (fd < 0)
		return spk_fail(errno, "rate limit: timerfd_create: %s", strerror(errno));
	if ((rc = spk_evloop_add(rl->loop, fd, EPOLLIN, on_refill, rl)) < 0) {
		close(fd);
		return rc;
	}
	rl->tfd = fd;
	return 0;
}

int spk_rl_set(struct spk_ratelimiter *rl, const struct spk_rate_limit *l)
{
	uint64_t now = now_ns();
	bool limited;
	int rc;

	if (!rl || (rc = spk_rl_check(l)) < 0)
		return rl ? rc : spk_fail(EINVAL, "rate limit: NULL limiter");
	limited = l->bandwidth.size || l->ops.size;
	if (limited && (rc = make_timer(rl)) < 0)
		return rc;
	spk_tbucket_init(&rl->bw, &l->bandwidth, now);
	spk_tbucket_init(&rl->ops, &l->ops, now);
	rl->limited = limited;
	if (rl->blocked) {
		/* full buckets (or none): the queue goes on now */
		rl->blocked = false;
		if (rl->tfd >= 0)
			timerfd_settime(rl->tfd, 0, &(struct itimerspec){0}, NULL);
		spk_virtio_kick(rl->vd, rl->queue);
	}
	return 0;
}

bool spk_rl_admit(struct spk_ratelimiter *rl)
{
	uint64_t wait, w2;

	if (!rl->limited)
		return true;
	if (rl->blocked)
		return false;
	uint64_t now = now_ns();
	spk_tbucket_refill(&rl->bw, now);
	spk_tbucket_refill(&rl->ops, now);
	wait = spk_tbucket_wait_ns(&rl->bw);
	w2 = spk_tbucket_wait_ns(&rl->ops);
	if (w2 > wait)
		wait = w2;
	if (!wait)
		return true;
	struct itimerspec its = {.it_value = {.tv_sec = (time_t)(wait / 1000000000ull),
	                                      .tv_nsec = (long)(wait % 1000000000ull)}};
	if (timerfd_settime(rl->tfd, 0, &its, NULL) < 0)
		return true; /* no timer: better fast than stuck for good */
	rl->blocked = true;
	rl->st.throttled++;
	return false;
}

void spk_rl_charge(struct spk_ratelimiter *rl, uint64_t ops, uint64_t bytes)
{
	rl->st.ops += ops;
	rl->st.bytes += bytes;
	if (!rl->limited)
		return;
	spk_tbucket_spend(&rl->ops, ops);
	spk_tbucket_spend(&rl->bw, bytes);
}

void spk_rl_free(struct spk_ratelimiter *rl)
{
	if (!rl || rl->tfd < 0)
		return;
	if (rl->loop)
		spk_evloop_del(rl->loop, rl->tfd);
	close(rl->tfd);
	rl->tfd = -1;
}
