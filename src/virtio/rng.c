/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-rng (virtio 1.2 section 5.4): one request queue; each chain's
 * writable buffers are filled from getrandom(). A request is served up to
 * RNG_MAX_REQUEST bytes, so a guest asking for gigabytes cannot keep the
 * event loop busy: the used length says how much it got.
 *
 * A rate limit (Firecracker's PUT /entropy rate_limiter) counts each
 * request as one operation and the bytes it asks for (up to the cap) as
 * bandwidth; over budget, the queue waits for the refill timer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <sparkler/snapshot.h>
#include <sparkler/virtio.h>

#include "core/internal.h"
#include "virtio/ratelimit.h"

#define RNG_QUEUE_SIZE  256
#define RNG_MAX_REQUEST (64u << 10)
#define RNG_CHUNK       4096
#define RNG_CLASS       0xff0000 /* "other": there is no PCI class for it */

struct spk_virtio_rng {
	struct spk_virtio *vd;
	uint64_t bytes; /* under the device lock */
	struct spk_ratelimiter rl;
};

static size_t fill(uint8_t *buf, size_t n)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = getrandom(buf + done, n - done, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		done += (size_t)r;
	}
	return done;
}

/* Fill one chain; returns the bytes written. */
static uint32_t serve(struct spk_virtio_rng *r, const struct spk_virtq_chain *c)
{
	uint32_t want = c->in_len < RNG_MAX_REQUEST ? c->in_len : RNG_MAX_REQUEST;
	uint8_t buf[RNG_CHUNK];
	uint32_t done = 0;

	while (done < want) {
		size_t n = fill(buf, want - done < sizeof(buf) ? want - done : sizeof(buf));
		int64_t w;

		if (n == 0)
			break;
		w = spk_virtq_write(spk_virtio_mem(r->vd), c, done, buf, n);
		if (w <= 0)
			break;
		done += (uint32_t)w;
	}
	explicit_bzero(buf, sizeof(buf));
	r->bytes += done;
	return done;
}

static void rng_notify(void *opaque, struct spk_virtio *vd, unsigned q)
{
	struct spk_virtio_rng *r = opaque;
	struct spk_virtq_chain c;
	uint32_t n;

	while (spk_rl_admit(&r->rl) && spk_virtio_pop(vd, q, &c) > 0) {
		n = serve(r, &c);
		spk_rl_charge(&r->rl, 1, n);
		spk_virtio_push(vd, q, &c, n);
	}
	spk_virtio_interrupt(vd, q);
}

/* State: only the count; the bytes were random and are gone. */
static int rng_save(void *opaque, struct spk_snap_writer *w)
{
	struct spk_virtio_rng *r = opaque;

	return spk_snap_put_u64(w, "bytes", r->bytes);
}

static int rng_load(void *opaque, struct spk_snap_reader *rd)
{
	struct spk_virtio_rng *r = opaque;
	uint64_t bytes;
	int rc;

	if ((rc = spk_snap_get_u64(rd, "bytes", &bytes)) || (rc = spk_snap_reader_done(rd)))
		return rc;
	r->bytes = bytes;
	return 0;
}

static const struct spk_dev_state_ops rng_state = {"virtio_rng", 1, rng_save, rng_load};

static const struct spk_virtio_ops rng_ops = {.queue_notify = rng_notify, .state = &rng_state};

int spk_virtio_rng_new(const struct spk_virtio_rng_config *cfg, struct spk_virtio_rng **out)
{
	struct spk_virtio_rng *r;
	int rc;

	if (!cfg || !out)
		return spk_fail(EINVAL, "virtio-rng: new needs a config and an out pointer");
	if ((rc = spk_rl_check(&cfg->rate_limit)) < 0)
		return rc;
	r = calloc(1, sizeof(*r));
	if (!r)
		return spk_fail(ENOMEM, "virtio-rng: out of memory");
	spk_rl_init(&r->rl, cfg->loop, NULL, 0);
	const struct spk_virtio_config vc = {
	    .name = "virtio-rng",
	    .device_id = SPK_VIRTIO_ID_RNG,
	    .class_code = RNG_CLASS,
	    .num_queues = 1,
	    .queue_max = RNG_QUEUE_SIZE,
	    .ops = &rng_ops,
	    .opaque = r,
	    .pci = cfg->pci,
	    .slot = cfg->slot,
	    .mem = cfg->mem,
	    .loop = cfg->loop,
	};
	if ((rc = spk_virtio_new(&vc, &r->vd)) < 0) {
		free(r);
		return rc;
	}
	r->rl.vd = r->vd;
	if ((rc = spk_rl_set(&r->rl, &cfg->rate_limit)) < 0) {
		spk_virtio_rng_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

void spk_virtio_rng_free(struct spk_virtio_rng *r)
{
	if (!r)
		return;
	spk_rl_free(&r->rl); /* its refill kicks the device */
	spk_virtio_free(r->vd);
	free(r);
}

struct spk_virtio *spk_virtio_rng_dev(struct spk_virtio_rng *r)
{
	if (!r) {
		spk_fail(EINVAL, "virtio-rng: dev needs a device");
		return NULL;
	}
	return r->vd;
}

uint64_t spk_virtio_rng_bytes(struct spk_virtio_rng *r)
{
	if (!r) {
		spk_fail(EINVAL, "virtio-rng: bytes needs a device");
		return 0;
	}
	spk_virtio_lock(r->vd);
	uint64_t n = r->bytes;
	spk_virtio_unlock(r->vd);
	return n;
}

int spk_virtio_rng_set_rate_limit(struct spk_virtio_rng *r, const struct spk_rate_limit *l)
{
	int rc;

	if (!r || !l)
		return spk_fail(EINVAL, "virtio-rng: set_rate_limit needs a device and a limit");
	spk_virtio_lock(r->vd);
	rc = spk_rl_set(&r->rl, l);
	spk_virtio_unlock(r->vd);
	return rc;
}

void spk_virtio_rng_rate_stats(struct spk_virtio_rng *r, struct spk_rate_limit_stats *out)
{
	if (!r || !out) {
		if (out)
			memset(out, 0, sizeof(*out));
		spk_fail(EINVAL, "virtio-rng: rate_stats needs a device and an out pointer");
		return;
	}
	spk_virtio_lock(r->vd);
	*out = r->rl.st;
	spk_virtio_unlock(r->vd);
}
