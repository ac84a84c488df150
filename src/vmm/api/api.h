/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Firecracker-compatible control plane.
 *
 *   api_handler.c  one request (method, path, body) -> one response: routing,
 *                  JSON, the pre-boot/post-boot rules. No sockets, no VM: what
 *                  it does to the machine goes through spk_api_ops, so tests
 *                  and the fuzzer call it directly.
 *   api_server.c   HTTP/1.1 on a Unix socket (libmicrohttpd): body limits,
 *                  timeouts, the socket file's life.
 *   api_metrics.c  the metrics lines and the logger.
 *   api.c          `sparkler --api-sock`: the VM thread, signals, the exit.
 */
#ifndef SPK_VMM_API_H
#define SPK_VMM_API_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sparkler/virtio_balloon.h>

#include "vmm/api/resources.h"

enum spk_api_state {
	SPK_API_NOT_STARTED = 0,
	SPK_API_RUNNING,
	SPK_API_PAUSED,
	SPK_API_EXITED, /* the guest stopped; sparkler is about to exit */
};

/* PUT /snapshot/create and /snapshot/load, as parsed (api_snapshot.c). */
struct spk_snap_req {
	char *state, *mem;  /* snapshot_path; mem_file_path or mem_backend.backend_path */
	bool diff;          /* create: snapshot_type Diff */
	bool uffd;          /* load: mem_backend Uffd (mem: the handler's socket) */
	bool resume, track; /* load: resume_vm; track_dirty_pages (or enable_diff_snapshots) */
	uint32_t n_over;    /* load: network_overrides */
	struct {
		char id[SPK_MACHINE_ID_MAX];
		char tap[16];
		uint8_t mac[6]; /* guest_mac (sparkler's: a clone's MAC) */
		bool has_mac;
	} over[SPK_MACHINE_MAX_NETS];
	/* load: vsock_override (sparkler's: a clone's CID and socket); 0: none */
	uint32_t vsock_cid;
	char *vsock_uds;
};
int spk_res_snapshot_create(json_t *body, struct spk_snap_req *q, struct spk_res_err *e);
int spk_res_snapshot_load(json_t *body, struct spk_snap_req *q, struct spk_res_err *e);
void spk_snap_req_free(struct spk_snap_req *q);

/* What the handler asks of the VM. Each returns 0, or -errno with a
 * one-line reason in err. Called with the API lock held. */
struct spk_api_ops {
	int (*start)(void *ctx, const struct spk_vm_resources *r, char *err, size_t len);
	enum spk_api_state (*state)(void *ctx);
	int (*pause)(void *ctx, char *err, size_t len);
	int (*resume)(void *ctx, char *err, size_t len);
	int (*ctrl_alt_del)(void *ctx, char *err, size_t len);
	/* PATCH /drives after boot with a path_on_host: the running disk of
	 * drive id takes that file, or nothing changes (NULL: only recorded). */
	int (*swap_drive)(void *ctx, const char *id, const char *path, char *err, size_t len);
	/* PATCH after boot with a rate limiter: the running disk, or network
	 * interface (rx or tx NULL: unchanged), takes the new limit. */
	int (*limit_drive)(void *ctx, const char *id, const struct spk_rate_limit *l, char *err,
	                   size_t len);
	int (*limit_net)(void *ctx, const char *id, const struct spk_rate_limit *rx,
	                 const struct spk_rate_limit *tx, char *err, size_t len);
	/* The running balloon: PATCH /balloon's target (MiB), PATCH
	 * /balloon/statistics' interval, GET /balloon/statistics. */
	int (*balloon_target)(void *ctx, uint32_t amount_mib, char *err, size_t len);
	int (*balloon_interval)(void *ctx, uint32_t s, char *err, size_t len);
	int (*balloon_stats)(void *ctx, struct spk_virtio_balloon_stats *out, char *err,
	                     size_t len);
	/* Free page hinting: op 0 start (ack: acknowledge_on_stop), 1 stop,
	 * 2 status; the last host and guest commands in *host, *guest. */
	int (*balloon_hint)(void *ctx, int op, bool ack, uint32_t *host, uint32_t *guest, char *err,
	                    size_t len);
	int (*flush_metrics)(void *ctx, char *err, size_t len);
	/* Open cfg's file; cfg stays the caller's. */
	int (*set_logger)(void *ctx, struct spk_logger_config *cfg, char *err, size_t len);
	int (*set_metrics)(void *ctx, struct spk_metrics_config *cfg, char *err, size_t len);
	/* PUT /snapshot/create (the VM paused) and /snapshot/load (before any
	 * boot resource; the VM built from the snapshot then runs or waits
	 * paused). NULL: refused as unsupported. */
	int (*snapshot_create)(void *ctx, const struct spk_snap_req *q, char *err, size_t len);
	int (*snapshot_load)(void *ctx, const struct spk_vm_resources *r,
	                     const struct spk_snap_req *q, char *err, size_t len);
};

struct spk_api_stats {
	uint64_t requests, ok, client_errors, server_errors;
};

struct spk_api {
	pthread_mutex_t lock; /* everything below; held for a whole request */
	struct spk_vm_resources res;
	const struct spk_api_ops *ops;
	void *ctx;
	char id[SPK_MACHINE_ID_MAX];
	char exit_reason[256]; /* set with state EXITED */
	bool started;
	struct spk_api_stats stats;
};

struct spk_api_response {
	unsigned status;   /* 200, 204, 400, 404, 405, 413 (MMDS), 500 */
	char *body;        /* JSON (malloc'd), or NULL for 204 */
	const char *allow; /* the Allow header of a 405 */
	bool deprecated;   /* "Deprecation: true" (Firecracker's, e.g. MMDS V1) */
};

void spk_api_init(struct spk_api *api, const struct spk_api_ops *ops, void *ctx, const char *id);
void spk_api_destroy(struct spk_api *api);

/* Handle one request; body may be NULL when len is 0. Never fails: out
 * always gets a status and, except for 204, a JSON body. */
void spk_api_handle(struct spk_api *api, const char *method, const char *url, const char *body,
                    size_t len, struct spk_api_response *out);
void spk_api_response_free(struct spk_api_response *r);

/* A response for a request that never reached the handler. */
void spk_api_fault(struct spk_api_response *out, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- the HTTP server (api_server.c) ---- */

#define SPK_API_MAX_BODY_DEFAULT 51200 /* Firecracker's --http-api-max-payload-size */
#define SPK_API_CONN_TIMEOUT_S   10    /* an idle or stalled connection is closed */
#define SPK_API_MAX_CONNECTIONS  64
/* A request not answered this long after its connection opened (or its
 * previous request was answered) is cut, however steadily it trickles in:
 * the time in the handler does not count. */
#define SPK_API_REQUEST_DEADLINE_S 15

struct spk_api_server;

/*
 * Listen on the Unix socket path (refused if path exists and is not a
 * socket nobody listens on; a stale socket is replaced) and serve api
 * on a thread of the server's own. 0, or -errno with a reason in err.
 */
int spk_api_server_start(struct spk_api *api, const char *path, size_t max_body,
                         struct spk_api_server **out, char *err, size_t errlen);
/* Stop taking connections, let requests in flight finish (up to a second),
 * close everything and remove the socket file. */
void spk_api_server_stop(struct spk_api_server *s);

/* ---- metrics and logs (api_metrics.c) ---- */

struct spk_machine;
struct spk_obs;

/* Logger and metrics state of one sparkler process. */
int spk_obs_new(const char *instance_id, struct spk_obs **out);
void spk_obs_free(struct spk_obs *o);
/* Route the library's log lines (and ours) to cfg's path at cfg's level. */
int spk_obs_set_logger(struct spk_obs *o, struct spk_logger_config *cfg, char *err, size_t len);
int spk_obs_set_metrics(struct spk_obs *o, struct spk_metrics_config *cfg, char *err, size_t len);
bool spk_obs_has_metrics(struct spk_obs *o);
/* The machine whose counters go into the lines (NULL: none yet). */
void spk_obs_set_machine(struct spk_obs *o, struct spk_machine *m);
/* The MMDS store whose counters go into the lines ("mmds"; NULL: none). */
struct spk_mmds;
void spk_obs_set_mmds(struct spk_obs *o, struct spk_mmds *m);
/* Write one metrics line now, with the API's counters and the VM's state;
 * why names the occasion ("start", "periodic", "FlushMetrics", "exit").
 * -ENOENT without a metrics path. */
int spk_obs_flush(struct spk_obs *o, const struct spk_api_stats *stats, enum spk_api_state st,
                  const char *why, char *err, size_t len);

#endif
