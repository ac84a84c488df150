/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The microVM metadata service (MMDS), as Firecracker has it: a JSON data
 * store the host fills through the API (PUT, PATCH, GET /mmds) and the
 * guest reads over HTTP at a link-local IPv4 address (169.254.169.254 by
 * default) on the network interfaces PUT /mmds/config names.
 *
 *   store.c  the data store, its size limit, its configuration (version,
 *            address, imds_compat), V2 session tokens, metrics. One per
 *            process; every call takes its lock (API thread and the event
 *            loops of the network devices share it).
 *   http.c   one guest HTTP request -> one HTTP response (GET of a path
 *            in the store, PUT /latest/api/token).
 *   stack.c  the frames: ARP for the MMDS address and a small TCP server
 *            on port 80, one per network interface, behind the virtio-net
 *            device's frame hook (sparkler/virtio_net.h).
 */
#ifndef SPK_MMDS_H
#define SPK_MMDS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SPK_MMDS_LIMIT_DEFAULT 51200       /* bytes of compact JSON (Firecracker's) */
#define SPK_MMDS_IPV4_DEFAULT  0xa9fea9feu /* 169.254.169.254, host order */
#define SPK_MMDS_TTL_MIN       1           /* V2 token lifetimes, seconds */
#define SPK_MMDS_TTL_MAX       21600
#define SPK_MMDS_TOKEN_PATH    "/latest/api/token"

enum spk_mmds_version { SPK_MMDS_V1 = 1, SPK_MMDS_V2 = 2 };

struct spk_mmds_config {
	enum spk_mmds_version version;
	uint32_t ipv4; /* host byte order */
	bool imds_compat;
};

/* Firecracker's "mmds" metrics group; counters since the store was made. */
struct spk_mmds_metrics {
	uint64_t rx_accepted;         /* frames for the MMDS taken from the guest */
	uint64_t rx_accepted_err;     /* ... that were dropped as malformed */
	uint64_t rx_accepted_unusual; /* ... well formed but odd (no connection, bad flags) */
	uint64_t rx_bad_eth;          /* frames whose headers could not be parsed */
	uint64_t rx_count;            /* HTTP requests answered */
	uint64_t rx_invalid_token;    /* GETs with a token that is not valid */
	uint64_t rx_no_token;         /* GETs without a token */
	uint64_t tx_bytes, tx_frames; /* frames given to the guest */
	uint64_t tx_errors;           /* control frames that did not fit their queue */
	uint64_t tx_count;            /* HTTP responses built */
	uint64_t connections_created, connections_destroyed;
};

struct spk_mmds;

/* A store with this size limit (bytes of compact JSON, >= 1). 0 and *out,
 * or -errno with spk_last_error(). */
int spk_mmds_new(size_t limit, struct spk_mmds **out);
void spk_mmds_free(struct spk_mmds *m);
size_t spk_mmds_limit(struct spk_mmds *m);

/* The data. put replaces it; patch merges (RFC 7396) into it and needs a
 * put first. 0; -EFBIG: the result would be over the limit (the store is
 * unchanged); -ENODATA: patch before any put; -ENOMEM. */
int spk_mmds_put(struct spk_mmds *m, json_t *data);
int spk_mmds_patch(struct spk_mmds *m, json_t *patch);
/* A new reference to a deep copy of the data ({} before any put), or NULL
 * (out of memory). */
json_t *spk_mmds_get(struct spk_mmds *m);

void spk_mmds_set_config(struct spk_mmds *m, const struct spk_mmds_config *c);
void spk_mmds_get_config(struct spk_mmds *m, struct spk_mmds_config *c);
/* Has PUT /mmds/config been applied (or a config file's mmds-config)? */
bool spk_mmds_configured(struct spk_mmds *m);

void spk_mmds_get_metrics(struct spk_mmds *m, struct spk_mmds_metrics *out);
/* For the stack: add to the counters (under the store's lock). */
void spk_mmds_count(struct spk_mmds *m, const struct spk_mmds_metrics *delta);

/* ---- the guest's side (http.c) ---- */

/*
 * One guest request: the bytes received so far on a connection (len of
 * them). Returns 0 while the request is incomplete; else how many bytes it
 * took, with *resp (malloc'd, *resp_len bytes: a whole HTTP response) and
 * *close (the connection ends after the response). A request that cannot
 * become valid however much more arrives (too long, not HTTP) is answered
 * at once with 400 or 413 and close. -ENOMEM when no response could be
 * made at all.
 */
long spk_mmds_http(struct spk_mmds *m, const char *req, size_t len, size_t max, char **resp,
                   size_t *resp_len, bool *close);

/* ---- store internals the HTTP side uses (store.c) ---- */

/* A token for ttl seconds (SPK_MMDS_TTL_MIN..MAX) into buf (>= 64 bytes). */
int spk_mmds_token_new(struct spk_mmds *m, uint32_t ttl, char *buf, size_t len);
bool spk_mmds_token_valid(struct spk_mmds *m, const char *tok, size_t len);
/* 64 random-looking bits (TCP initial sequence numbers). */
uint64_t spk_mmds_random(struct spk_mmds *m);

/* A clock for tests (milliseconds, monotonic); NULL: CLOCK_MONOTONIC. */
void spk_mmds_set_clock(struct spk_mmds *m, uint64_t (*now_ms)(void));
/* That clock, now (token expiry and the stack's retransmission timers). */
uint64_t spk_mmds_now(struct spk_mmds *m);

/* SipHash-2-4 of msg under a 16-byte key (exposed for its unit test). */
uint64_t spk_mmds_siphash(const uint8_t key[16], const void *msg, size_t len);

/* Lock the store and look up the value at a JSON pointer (already split
 * into an absolute path such as "/latest/meta-data"); the caller formats it
 * and unlocks. NULL value: not found (or not initialized). */
void spk_mmds_lock(struct spk_mmds *m);
void spk_mmds_unlock(struct spk_mmds *m);
json_t *spk_mmds_lookup_locked(struct spk_mmds *m, const char *path, size_t len);

#endif
