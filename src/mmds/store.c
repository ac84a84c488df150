/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The MMDS data store: one JSON value, replaced by PUT and merged into by
 * PATCH (RFC 7396), never larger than the limit counted as Firecracker
 * counts it (the bytes of its compact JSON text). A change is made on a
 * copy and kept only if the copy fits, so a refused PATCH changes nothing.
 *
 * V2 session tokens are stateless, so a guest asking for many cannot grow
 * anything: a token is the hex of (expiry in ms, a counter, SipHash-2-4 of
 * both under a key drawn at start). A token is valid while its MAC checks
 * and its expiry is ahead of the monotonic clock; tokens of an earlier
 * sparkler process never are (other key).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "core/internal.h"
#include "mmds/mmds.h"

#define TOKEN_BYTES 24 /* expiry, counter, MAC: 8 each */

struct spk_mmds {
	pthread_mutex_t lock;
	json_t *data; /* NULL until the first put */
	size_t limit;
	struct spk_mmds_config cfg;
	bool configured;
	uint8_t key[16];
	uint64_t counter;
	struct spk_mmds_metrics st;
	uint64_t (*now_ms)(void);
};

/* ---- SipHash-2-4 (Aumasson and Bernstein) ------------------------------------------ */

static uint64_t rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

#define SIPROUND                                                                                   \
	do {                                                                                       \
		v0 += v1;                                                                          \
		v1 = rotl(v1, 13);                                                                 \
		v1 ^= v0;                                                                          \
		v0 = rotl(v0, 32);                                                                 \
		v2 += v3;                                                                          \
		v3 = rotl(v3, 16);                                                                 \
		v3 ^= v2;                                                                          \
		v0 += v3;                                                                          \
		v3 = rotl(v3, 21);                                                                 \
		v3 ^= v0;                                                                          \
		v2 += v1;                                                                          \
		v1 = rotl(v1, 17);                                                                 \
		v1 ^= v2;                                                                          \
		v2 = rotl(v2, 32);                                                                 \
	} while (0)

uint64_t spk_mmds_siphash(const uint8_t key[16], const void *msg, size_t len)
{
	const uint8_t *p = msg;
	uint64_t k0 = le64(key), k1 = le64(key + 8);
	uint64_t v0 = k0 ^ 0x736f6d6570736575ull, v1 = k1 ^ 0x646f72616e646f6dull;
	uint64_t v2 = k0 ^ 0x6c7967656e657261ull, v3 = k1 ^ 0x7465646279746573ull;
	uint64_t m, b = (uint64_t)len << 56;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		m = le64(p + i);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t j = 0; i + j < len; j++)
		b |= (uint64_t)p[i + j] << (8 * j);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- the store ---------------------------------------------------------------------- */

static uint64_t mono_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

int spk_mmds_new(size_t limit, struct spk_mmds **out)
{
	struct spk_mmds *m;

	if (!out || limit == 0)
		return spk_fail(EINVAL, "mmds: a store needs a limit of at least 1 byte");
	m = calloc(1, sizeof(*m));
	if (!m)
		return spk_fail(ENOMEM, "mmds: out of memory");
	if (getrandom(m->key, sizeof(m->key), 0) != sizeof(m->key)) {
		free(m);
		return spk_fail(EIO, "mmds: no random bytes for the token key");
	}
	pthread_mutex_init(&m->lock, NULL);
	m->limit = limit;
	m->cfg = (struct spk_mmds_config){SPK_MMDS_V1, SPK_MMDS_IPV4_DEFAULT, false};
	m->now_ms = mono_ms;
	*out = m;
	return 0;
}

void spk_mmds_free(struct spk_mmds *m)
{
	if (!m)
		return;
	json_decref(m->data);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

size_t spk_mmds_limit(struct spk_mmds *m)
{
	return m->limit;
}

static bool fits(json_t *v, size_t limit)
{
	/* json_dumpb with no buffer says how long the text would be */
	size_t n = json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);

	return n != 0 && n <= limit;
}

int spk_mmds_put(struct spk_mmds *m, json_t *data)
{
	json_t *copy;
	int rc = 0;

	if (!fits(data, m->limit))
		return -EFBIG;
	if (!(copy = json_deep_copy(data)))
		return -ENOMEM;
	pthread_mutex_lock(&m->lock);
	json_decref(m->data);
	m->data = copy;
	pthread_mutex_unlock(&m->lock);
	return rc;
}

/* RFC 7396 section 2, in place: target may be replaced; the result is a
 * new reference (target's is consumed). NULL: out of memory. */
static json_t *merge(json_t *target, json_t *patch)
{
	const char *k;
	json_t *v;

	if (!json_is_object(patch)) {
		json_decref(target);
		return json_deep_copy(patch);
	}
	if (!json_is_object(target)) {
		json_decref(target);
		if (!(target = json_object()))
			return NULL;
	}
	json_object_foreach(patch, k, v)
	{
		if (json_is_null(v)) {
			json_object_del(target, k);
			continue;
		}
		json_t *old = json_object_get(target, k);
		json_t *now = merge(json_incref(old), v);

		if (!now || json_object_set_new(target, k, now) < 0) {
			json_decref(target);
			return NULL;
		}
	}
	return target;
}

int spk_mmds_patch(struct spk_mmds *m, json_t *patch)
{
	json_t *copy;
	int rc = 0;

	pthread_mutex_lock(&m->lock);
	if (!m->data) {
		rc = -ENODATA;
		goto out;
	}
	if (!(copy = merge(json_deep_copy(m->data), patch))) {
		rc = -ENOMEM;
		goto out;
	}
	if (!fits(copy, m->limit)) {
		json_decref(copy);
		rc = -EFBIG;
		goto out;
	}
	json_decref(m->data);
	m->data = copy;
out:
	pthread_mutex_unlock(&m->lock);
	return rc;
}

json_t *spk_mmds_get(struct spk_mmds *m)
{
	json_t *v;

	pthread_mutex_lock(&m->lock);
	v = m->data ? json_deep_copy(m->data) : json_object();
	pthread_mutex_unlock(&m->lock);
	return v;
}

void spk_mmds_set_config(struct spk_mmds *m, const struct spk_mmds_config *c)
{
	pthread_mutex_lock(&m->lock);
	m->cfg = *c;
	m->configured = true;
	pthread_mutex_unlock(&m->lock);
}

void spk_mmds_get_config(struct spk_mmds *m, struct spk_mmds_config *c)
{
	pthread_mutex_lock(&m->lock);
	*c = m->cfg;
	pthread_mutex_unlock(&m->lock);
}

bool spk_mmds_configured(struct spk_mmds *m)
{
	bool b;

	pthread_mutex_lock(&m->lock);
	b = m->configured;
	pthread_mutex_unlock(&m->lock);
	return b;
}

void spk_mmds_get_metrics(struct spk_mmds *m, struct spk_mmds_metrics *out)
{
	pthread_mutex_lock(&m->lock);
	*out = m->st;
	pthread_mutex_unlock(&m->lock);
}

void spk_mmds_count(struct spk_mmds *m, const struct spk_mmds_metrics *d)
{
	const uint64_t *s = (const uint64_t *)d;
	uint64_t *t = (uint64_t *)&m->st;

	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < sizeof(*d) / sizeof(uint64_t); i++)
		t[i] += s[i];
	pthread_mutex_unlock(&m->lock);
}

void spk_mmds_set_clock(struct spk_mmds *m, uint64_t (*now_ms)(void))
{
	pthread_mutex_lock(&m->lock);
	m->now_ms = now_ms ? now_ms : mono_ms;
	pthread_mutex_unlock(&m->lock);
}

uint64_t spk_mmds_now(struct spk_mmds *m)
{
	uint64_t (*now_ms)(void);

	pthread_mutex_lock(&m->lock);
	now_ms = m->now_ms;
	pthread_mutex_unlock(&m->lock);
	return now_ms();
}

void spk_mmds_lock(struct spk_mmds *m)
{
	pthread_mutex_lock(&m->lock);
}

void spk_mmds_unlock(struct spk_mmds *m)
{
	pthread_mutex_unlock(&m->lock);
}

/* ---- tokens and randomness ------------------------------------------------------------- */

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

uint64_t spk_mmds_random(struct spk_mmds *m)
{
	uint8_t b[9] = {'r'};
	uint64_t v;

	pthread_mutex_lock(&m->lock);
	put_le64(b + 1, ++m->counter);
	v = spk_mmds_siphash(m->key, b, sizeof(b));
	pthread_mutex_unlock(&m->lock);
	return v;
}

int spk_mmds_token_new(struct spk_mmds *m, uint32_t ttl, char *buf, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t t[TOKEN_BYTES];

	if (ttl < SPK_MMDS_TTL_MIN || ttl > SPK_MMDS_TTL_MAX || len < 2 * TOKEN_BYTES + 1)
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	put_le64(t, m->now_ms() + (uint64_t)ttl * 1000);
	put_le64(t + 8, ++m->counter);
	put_le64(t + 16, spk_mmds_siphash(m->key, t, 16));
	pthread_mutex_unlock(&m->lock);
	for (size_t i = 0; i < TOKEN_BYTES; i++) {
		buf[2 * i] = hex[t[i] >> 4];
		buf[2 * i + 1] = hex[t[i] & 15];
	}
	buf[2 * TOKEN_BYTES] = '\0';
	return 0;
}

static int unhex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

bool spk_mmds_token_valid(struct spk_mmds *m, const char *tok, size_t len)
{
	uint8_t t[TOKEN_BYTES];
	uint64_t now;
	bool ok;

	if (len != 2 * TOKEN_BYTES)
		return false;
	for (size_t i = 0; i < TOKEN_BYTES; i++) {
		int hi = unhex(tok[2 * i]), lo = unhex(tok[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		t[i] = (uint8_t)(hi << 4 | lo);
	}
	pthread_mutex_lock(&m->lock);
	ok = spk_mmds_siphash(m->key, t, 16) == le64(t + 16);
	now = m->now_ms();
	pthread_mutex_unlock(&m->lock);
	return ok && le64(t) > now;
}

/* ---- lookups ------------------------------------------------------------------------------ */

/* One JSON pointer segment (RFC 6901: ~1 is '/', ~0 is '~') into key; false
 * when it does not decode or is too long. */
static bool segment(const char *s, size_t n, char *key, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == '~') {
			if (i + 1 >= n || (s[i + 1] != '0' && s[i + 1] != '1'))
				return false;
			c = s[++i] == '0' ? '~' : '/';
		}
		if (c == '\0' || o + 1 >= cap)
			return false;
		key[o++] = c;
	}
	key[o] = '\0';
	return true;
}

/* An array index: digits, no leading zero (RFC 6901). */
static bool index_of(const char *key, size_t *out)
{
	size_t v = 0;

	if (!*key || (key[0] == '0' && key[1]))
		return false;
	for (const char *p = key; *p; p++) {
		if (*p < '0' || *p > '9' || v > (SIZE_MAX - 9) / 10)
			return false;
		v = v * 10 + (size_t)(*p - '0');
	}
	*out = v;
	return true;
}

json_t *spk_mmds_lookup_locked(struct spk_mmds *m, const char *path, size_t len)
{
	char key[512];
	json_t *v = m->data;
	size_t i = 0;

	/* the path is "/a/b", maybe with one trailing '/' (Firecracker's
	 * "latest/meta-data/" is "latest/meta-data") */
	if (len && path[len - 1] == '/')
		len--;
	while (v && i < len) {
		size_t j = i + 1, idx;

		if (path[i] != '/')
			return NULL;
		while (j < len && path[j] != '/')
			j++;
		if (!segment(path + i + 1, j - i - 1, key, sizeof(key)))
			return NULL;
		if (json_is_object(v))
			v = json_object_get(v, key);
		else if (json_is_array(v) && index_of(key, &idx))
			v = json_array_get(v, idx);
		else
			return NULL;
		i = j;
	}
	return v;
}
