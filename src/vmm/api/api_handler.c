/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One API request -> one response, as Firecracker answers it: 204 for a
 * PUT or PATCH that worked, 200 with a JSON body for a GET, 400 with
 * {"fault_message": "..."} for anything refused. Unknown paths are 404 and
 * known paths with a wrong method 405 (Firecracker says 400 to both).
 *
 * The order of checks: path, method, body present, JSON syntax, the
 * pre-boot/post-boot rule, then the body's schema and values.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sparkler/log.h>
#include <sparkler/sparkler.h>

#include "vmm/api/api.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define ERR_MAX      512

enum method { M_GET = 1, M_PUT = 2, M_PATCH = 4 };

static const char *const NOT_POST_BOOT =
    "The requested operation is not supported after starting the microVM.";
static const char *const NOT_PRE_BOOT =
    "The requested operation is not supported before starting the microVM.";

/* ---- responses -------------------------------------------------------------- */

static char *dump(json_t *o)
{
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	return s;
}

/* Make msg printable ASCII: it may quote a path or id that is not UTF-8. */
static void ascii_only(char *msg)
{
	for (unsigned char *p = (unsigned char *)msg; *p; p++)
		if (*p < 0x20 || *p >= 0x7f)
			*p = '?';
}

void spk_api_fault(struct spk_api_response *out, unsigned status, const char *fmt, ...)
{
	char msg[ERR_MAX + 128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	out->status = status;
	out->body = dump(json_pack("{s:s}", "fault_message", msg));
	if (!out->body) { /* not UTF-8 (or cut inside a character) */
		ascii_only(msg);
		out->body = dump(json_pack("{s:s}", "fault_message", msg));
	}
	if (!out->body) /* out of memory: a fixed answer */
		out->body = strdup("{\"fault_message\":\"internal error\"}");
}

static void reply_json(struct spk_api_response *out, json_t *o)
{
	out->status = 200;
	out->body = dump(o);
	if (!out->body)
		spk_api_fault(out, 500, "out of memory");
}

static void reply_res_err(struct spk_api_response *out, const struct spk_res_err *e)
{
	if (e->schema)
		spk_api_fault(
		    out, 400,
		    "An error occurred when deserializing the json body of a request: %s.", e->msg);
	else
		spk_api_fault(out, 400, "%s", e->msg);
}

/* 204, or 400 with the reason of a failed op. */
static void reply_rc(struct spk_api_response *out, int rc, const char *prefix, const char *err)
{
	if (rc == 0)
		out->status = 204;
	else
		spk_api_fault(out, 400, "%s%s", prefix, *err ? err : strerror(-rc));
}

void spk_api_response_free(struct spk_api_response *r)
{
	free(r->body);
	r->body = NULL;
}

/* ---- handlers -------------------------------------------------------------------- */

struct req {
	struct spk_api *api;
	enum method method;
	const char *id; /* the {id} of the path, or NULL */
	json_t *body;   /* NULL for GET */
	struct spk_api_response *out;
};

static const char *state_name(enum spk_api_state s)
{
	switch (s) {
	case SPK_API_RUNNING:
		return "Running";
	case SPK_API_PAUSED:
		return "Paused";
	case SPK_API_NOT_STARTED:
	case SPK_API_EXITED:
		break;
	}
	return "Not started";
}

static void get_root(struct req *q)
{
	enum spk_api_state st = q->api->ops->state(q->api->ctx);

	reply_json(q->out,
	           json_pack("{s:s, s:s, s:s, s:s}", "id", q->api->id, "state", state_name(st),
	                     "vmm_version", SPARKLER_VERSION, "app_name", "sparkler"));
}

static void get_version(struct req *q)
{
	reply_json(q->out, json_pack("{s:s}", "firecracker_version", SPARKLER_VERSION));
}

static void get_vm_config(struct req *q)
{
	reply_json(q->out, spk_res_full_json(&q->api->res));
}

/* The outcome of applying a body to the resources: 204 or 400. */
static void applied(struct req *q, int rc, const struct spk_res_err *e)
{
	if (rc < 0)
		reply_res_err(q->out, e);
	else
		q->out->status = 204;
}

static void machine_config(struct req *q)
{
	struct spk_res_err e;

	if (q->method == M_GET)
		reply_json(q->out, spk_res_machine_json(&q->api->res));
	else
		applied(
		    q, spk_res_machine_config(&q->api->res, q->body, q->method == M_PATCH, "$", &e),
		    &e);
}

static void boot_source(struct req *q)
{
	struct spk_res_err e;

	applied(q, spk_res_boot_source(&q->api->res, q->body, "$", &e), &e);
}

static void drives(struct req *q)
{
	struct spk_res_err e;

	char err[ERR_MAX] = "";
	const char *file;
	int rc;

	if (q->method == M_PUT) {
		applied(q, spk_res_drive(&q->api->res, q->id, q->body, "$", &e), &e);
		return;
	}
	/* after boot (the route allows PATCH only then): a new backing file
	 * goes to the running disk first; if it refuses, nothing is recorded */
	rc = spk_res_drive_patch_check(&q->api->res, q->id, q->body, "$", &e);
	file = json_string_value(json_object_get(q->body, "path_on_host"));
	if (rc >= 0 && file && q->api->ops->swap_drive &&
	    q->api->ops->swap_drive(q->api->ctx, q->id, file, err, sizeof(err)) < 0) {
		spk_api_fault(q->out, 400, "Unable to patch the block device: %s", err);
		return;
	}
	/* a new rate limit: the running disk's buckets (checked above) */
	json_t *rl = json_object_get(q->body, "rate_limiter");
	if (rc >= 0 && rl && !json_is_null(rl) && q->api->ops->limit_drive) {
		struct spk_rate_limit l;

		spk_res_rate_limit(rl, &l);
		if (q->api->ops->limit_drive(q->api->ctx, q->id, &l, err, sizeof(err)) < 0) {
			spk_api_fault(q->out, 400, "Unable to patch the block device: %s", err);
			return;
		}
	}
	applied(q, rc < 0 ? rc : spk_res_drive_patch(&q->api->res, q->id, q->body, "$", &e), &e);
}

static void nets(struct req *q)
{
	struct spk_res_err e;

	if (q->method == M_PUT) {
		applied(q, spk_res_net(&q->api->res, q->id, q->body, "$", &e), &e);
		return;
	}
	/* after boot: checked first (nothing changes on a bad body), then the
	 * running device takes the limits; only what it accepted is recorded,
	 * so GET /vm/config never shows a limit the device refused */
	json_t *rx = json_object_get(q->body, "rx_rate_limiter");
	json_t *tx = json_object_get(q->body, "tx_rate_limiter");
	int rc = spk_res_net_patch_check(&q->api->res, q->id, q->body, "$", &e);

	rx = json_is_null(rx) ? NULL : rx; /* null counts as absent */
	tx = json_is_null(tx) ? NULL : tx;
	if (rc >= 0 && q->api->ops->limit_net && (rx || tx)) {
		struct spk_rate_limit lrx = {0}, ltx = {0};
		char err[ERR_MAX] = "";

		if (rx)
			spk_res_rate_limit(rx, &lrx);
		if (tx)
			spk_res_rate_limit(tx, &ltx);
		if (q->api->ops->limit_net(q->api->ctx, q->id, rx ? &lrx : NULL, tx ? &ltx : NULL,
		                           err, sizeof(err)) < 0) {
			spk_api_fault(q->out, 400, "Unable to update the net device: %s", err);
			return;
		}
	}
	applied(q, rc < 0 ? rc : spk_res_net_patch(&q->api->res, q->id, q->body, "$", &e), &e);
}

static void vsock(struct req *q)
{
	struct spk_res_err e;

	applied(q, spk_res_vsock(&q->api->res, q->body, "$", &e), &e);
}

static void entropy(struct req *q)
{
	struct spk_res_err e;

	applied(q, spk_res_entropy(&q->api->res, q->body, "$", &e), &e);
}

/* GET /balloon any time, PUT before boot, PATCH after (the routes). */
static void balloon(struct req *q)
{
	struct spk_res_err e;
	char err[ERR_MAX] = "";
	uint32_t amount;
	json_t *o;

	if (q->method == M_GET) {
		if ((o = spk_res_balloon_json(&q->api->res)))
			reply_json(q->out, o);
		else
			spk_api_fault(q->out, 400, "No balloon device found.");
		return;
	}
	if (q->method == M_PUT) {
		applied(q, spk_res_balloon(&q->api->res, q->body, "$", &e), &e);
		return;
	}
	if (spk_res_balloon_patch_check(&q->api->res, q->body, false, "$", &amount, &e) < 0) {
		reply_res_err(q->out, &e);
		return;
	}
	if (q->api->ops->balloon_target &&
	    q->api->ops->balloon_target(q->api->ctx, amount, err, sizeof(err)) < 0) {
		spk_api_fault(q->out, 400, "Unable to update the balloon device: %s", err);
		return;
	}
	q->api->res.m.balloon.amount_mib = amount;
	q->out->status = 204;
}

/* Firecracker's names of the statistics, by tag. */
static const char *const balloon_stat_names[SPK_BALLOON_S_NR] = {
    "swap_in",        "swap_out",         "major_faults", "minor_faults",        "free_memory",
    "total_memory",   "available_memory", "disk_caches",  "hugetlb_allocations", "hugetlb_failures",
    "oom_kill",       "alloc_stall",      "async_scan",   "direct_scan",         "async_reclaim",
    "direct_reclaim",
};

static json_t *balloon_stats_json(const struct spk_virtio_balloon_stats *st)
{
	const json_int_t per_mib = 1 << (20 - SPK_BALLOON_PAGE_SHIFT);
	json_t *o = json_pack("{s:I, s:I, s:I, s:I}", "target_pages", (json_int_t)st->target_pages,
	                      "actual_pages", (json_int_t)st->actual_pages, "target_mib",
	                      (json_int_t)st->target_pages / per_mib, "actual_mib",
	                      (json_int_t)st->actual_pages / per_mib);

	for (unsigned i = 0; o && i < SPK_BALLOON_S_NR; i++)
		if (st->have & (1u << i))
			json_object_set_new(o, balloon_stat_names[i],
			                    json_integer(st->value[i] > INT64_MAX
			                                     ? INT64_MAX
			                                     : (json_int_t)st->value[i]));
	return o;
}

static void balloon_statistics(struct req *q)
{
	struct spk_virtio_balloon_stats st;
	struct spk_res_err e;
	char err[ERR_MAX] = "";
	uint32_t s;

	if (!q->api->res.m.balloon.enabled) {
		spk_api_fault(q->out, 400, "No balloon device found.");
		return;
	}
	if (q->method == M_GET) {
		if (!q->api->res.m.balloon.stats_interval_s)
			spk_api_fault(q->out, 400,
			              "Statistics for the balloon device are not enabled");
		else if (!q->api->ops->balloon_stats ||
		         q->api->ops->balloon_stats(q->api->ctx, &st, err, sizeof(err)) < 0)
			spk_api_fault(q->out, 400, "Unable to get the balloon statistics: %s",
			              *err ? err : "no running device");
		else
			reply_json(q->out, balloon_stats_json(&st));
		return;
	}
	if (spk_res_balloon_patch_check(&q->api->res, q->body, true, "$", &s, &e) < 0) {
		reply_res_err(q->out, &e);
		return;
	}
	if (q->api->ops->balloon_interval &&
	    q->api->ops->balloon_interval(q->api->ctx, s, err, sizeof(err)) < 0) {
		spk_api_fault(q->out, 400, "Unable to update the balloon statistics: %s", err);
		return;
	}
	q->api->res.m.balloon.stats_interval_s = s;
	q->out->status = 204;
}

/* Free page hinting after boot: start (an optional body), stop, status. */
static bool hinting_on(struct req *q)
{
	if (!q->api->res.m.balloon.enabled)
		spk_api_fault(q->out, 400, "No balloon device found.");
	else if (!q->api->res.m.balloon.free_page_hinting)
		spk_api_fault(q->out, 400,
		              "The balloon free hinting was not enabled when the device "
		              "was configured.");
	else
		return true;
	return false;
}

static void hint_op(struct req *q, int op, bool ack)
{
	char err[ERR_MAX] = "";
	uint32_t host = 0, guest = 0;

	if (!q->api->ops->balloon_hint ||
	    q->api->ops->balloon_hint(q->api->ctx, op, ack, &host, &guest, err, sizeof(err)) < 0)
		spk_api_fault(q->out, 400, "Unable to run free page hinting: %s",
		              *err ? err : "no running device");
	else if (op == 2)
		reply_json(q->out, json_pack("{s:I, s:I}", "host_cmd", (json_int_t)host,
		                             "guest_cmd", (json_int_t)guest));
	else
		q->out->status = 204;
}

static void hinting_start(struct req *q)
{
	struct spk_res_err e;
	bool ack;

	if (!hinting_on(q))
		return;
	if (spk_res_balloon_hint_start(q->body, "$", &ack, &e) < 0)
		reply_res_err(q->out, &e);
	else
		hint_op(q, 0, ack);
}

static void hinting_stop(struct req *q)
{
	if (hinting_on(q))
		hint_op(q, 1, false);
}

static void hinting_status(struct req *q)
{
	if (hinting_on(q))
		hint_op(q, 2, false);
}

static void serial(struct req *q)
{
	struct spk_res_err e;

	applied(q, spk_res_serial(&q->api->res, q->body, "$", &e), &e);
}

/* PUT, PATCH and GET /mmds: the data store, at any time; after boot only
 * when an interface serves it (Firecracker's VM then has no store). An
 * empty store reads as {} (Firecracker's answer for its null). */
static void mmds(struct req *q)
{
	struct spk_res_err e = {0};
	unsigned status;

	if (q->api->started && !q->api->res.m.mmds) {
		spk_api_fault(q->out, 400, "MMDS error: The MMDS data store is not initialized.");
		return;
	}
	if (q->method == M_GET) {
		json_t *v = spk_res_mmds_json(&q->api->res);

		q->out->status = 200;
		q->out->body = v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
		json_decref(v);
		if (!q->out->body)
			spk_api_fault(q->out, 500, "out of memory");
		return;
	}
	if (spk_res_mmds_data(&q->api->res, q->body, q->method == M_PATCH, &status, &e) < 0)
		spk_api_fault(q->out, status, "%s", e.msg);
	else
		q->out->status = 204;
}

/* PUT /mmds/config. V1 (also what an omitted version means) works but is
 * deprecated, as Firecracker says: a warning and "Deprecation: true". */
static void mmds_config(struct req *q)
{
	struct spk_res_err e;
	const char *v = json_string_value(json_object_get(q->body, "version"));
	int rc = spk_res_mmds_config(&q->api->res, q->body, "$", &e);

	applied(q, rc, &e);
	if (rc == 0 && (!v || strcmp(v, "V1") == 0)) {
		spk_log(SPK_LOG_WARN, "PUT /mmds/config: V1 is deprecated. Use V2 instead.");
		q->out->deprecated = true;
	}
}

static void logger(struct req *q)
{
	struct spk_res_err e;
	struct spk_logger_config l;
	char err[ERR_MAX] = "";
	int rc;

	if (spk_res_logger(q->body, "$", &l, &e) < 0) {
		reply_res_err(q->out, &e);
		return;
	}
	rc = q->api->ops->set_logger(q->api->ctx, &l, err, sizeof(err));
	if (rc == 0) {
		spk_res_logger_free(&q->api->res.logger);
		q->api->res.logger = l;
	} else {
		spk_res_logger_free(&l);
	}
	reply_rc(q->out, rc, "Logger cannot be initialized: ", err);
}

static void metrics(struct req *q)
{
	struct spk_res_err e;
	struct spk_metrics_config mc;
	char err[ERR_MAX] = "";
	int rc;

	if (q->api->res.metrics.set) {
		spk_api_fault(q->out, 400, "Reinitialization of metrics not allowed.");
		return;
	}
	if (spk_res_metrics(q->body, "$", &mc, &e) < 0) {
		reply_res_err(q->out, &e);
		return;
	}
	rc = q->api->ops->set_metrics(q->api->ctx, &mc, err, sizeof(err));
	if (rc == 0) {
		q->api->res.metrics = mc;
	} else {
		spk_res_metrics_free(&mc);
	}
	reply_rc(q->out, rc, "Metrics cannot be initialized: ", err);
}

static void instance_start(struct req *q)
{
	char err[ERR_MAX] = "";
	int rc;

	if (q->api->started) {
		spk_api_fault(q->out, 400, "%s The microVM is already running.", NOT_POST_BOOT);
		return;
	}
	if (!q->api->res.m.kernel) {
		spk_api_fault(q->out, 400,
		              "Cannot start microvm without kernel configuration. "
		              "PUT /boot-source first.");
		return;
	}
	rc = q->api->ops->start(q->api->ctx, &q->api->res, err, sizeof(err));
	if (rc == 0)
		q->api->started = true;
	reply_rc(q->out, rc, "Failed to start the microVM: ", err);
}

static void actions(struct req *q)
{
	static const char *const names[] = {"FlushMetrics", "InstanceStart", "SendCtrlAltDel"};
	struct spk_res_err e;
	char err[ERR_MAX] = "";
	int rc, a = spk_res_enum_body(q->body, "action_type", names, ARRAY_LEN(names), "$", &e);

	switch (a) {
	case 0:
		rc = q->api->ops->flush_metrics(q->api->ctx, err, sizeof(err));
		reply_rc(q->out, rc, "Failed to flush the metrics: ", err);
		return;
	case 1:
		instance_start(q);
		return;
	case 2:
		if (!q->api->started) {
			spk_api_fault(q->out, 400, "%s", NOT_PRE_BOOT);
			return;
		}
		rc = q->api->ops->ctrl_alt_del(q->api->ctx, err, sizeof(err));
		reply_rc(q->out, rc, "Failed to send Ctrl+Alt+Del: ", err);
		return;
	default:
		reply_res_err(q->out, &e);
	}
}

static void vm_state(struct req *q)
{
	static const char *const names[] = {"Paused", "Resumed"};
	struct spk_res_err e;
	char err[ERR_MAX] = "";
	int rc, s = spk_res_enum_body(q->body, "state", names, ARRAY_LEN(names), "$", &e);

	if (s < 0) {
		reply_res_err(q->out, &e);
		return;
	}
	if (s == 0)
		rc = q->api->ops->pause(q->api->ctx, err, sizeof(err));
	else
		rc = q->api->ops->resume(q->api->ctx, err, sizeof(err));
	reply_rc(q->out, rc,
	         s == 0 ? "Failed to pause the microVM: "
	                : "Failed to resume the "
	                  "microVM: ",
	         err);
}

/* PUT /snapshot/create: the VM paused (Firecracker's rule). */
static void snapshot_create(struct req *q)
{
	struct spk_snap_req sq;
	struct spk_res_err e;
	char err[ERR_MAX] = "";
	int rc;

	if (spk_res_snapshot_create(q->body, &sq, &e) < 0) {
		reply_res_err(q->out, &e);
		return;
	}
	if (!q->api->ops->snapshot_create)
		rc = -ENOTSUP;
	else
		rc = q->api->ops->snapshot_create(q->api->ctx, &sq, err, sizeof(err));
	reply_rc(q->out, rc, "Failed to create a snapshot: ", err);
	spk_snap_req_free(&sq);
}

/* Anything configured that a load would ignore (Firecracker refuses the load then). */
static bool boot_resources_set(const struct spk_vm_resources *r)
{
	return r->m.kernel || r->m.n_drives || r->m.n_nets || r->m.vsock.enabled || r->m.entropy ||
	       r->m.balloon.enabled;
}

/* PUT /snapshot/load: before boot and before any boot resource. */
static void snapshot_load(struct req *q)
{
	struct spk_snap_req sq;
	struct spk_res_err e;
	char err[ERR_MAX] = "";
	int rc;

	if (spk_res_snapshot_load(q->body, &sq, &e) < 0) {
		reply_res_err(q->out, &e);
		return;
	}
	if (boot_resources_set(&q->api->res)) {
		spk_api_fault(
		    q->out, 400,
		    "Loading a microVM snapshot not allowed after configuring boot-specific "
		    "resources.");
		spk_snap_req_free(&sq);
		return;
	}
	if (!q->api->ops->snapshot_load)
		rc = -ENOTSUP;
	else
		rc = q->api->ops->snapshot_load(q->api->ctx, &q->api->res, &sq, err, sizeof(err));
	if (rc == 0)
		q->api->started = true;
	reply_rc(q->out, rc, "Failed to load the snapshot: ", err);
	spk_snap_req_free(&sq);
}

/* ---- routing ---------------------------------------------------------------------- */

enum boot_rule {
	ANY_TIME = 0,
	PRE_BOOT = 1,  /* refused after InstanceStart */
	POST_BOOT = 2, /* refused before */
};

struct route {
	const char *path; /* the first path segment ("" for "/") */
	const char *sub;  /* a fixed second segment, or NULL */
	bool has_id;      /* the second segment is an {id} */
	unsigned methods;
	void (*fn)(struct req *q);
	/* per method: GET, PUT, PATCH */
	enum boot_rule rule[3];
	const char *allow;
};

static const struct route routes[] = {
    {"", NULL, false, M_GET, get_root, {0}, "GET"},
    {"version", NULL, false, M_GET, get_version, {0}, "GET"},
    {"vm", "config", false, M_GET, get_vm_config, {0}, "GET"},
    {"machine-config",
     NULL,
     false,
     M_GET | M_PUT | M_PATCH,
     machine_config,
     {ANY_TIME, PRE_BOOT, PRE_BOOT},
     "GET, PUT, PATCH"},
    {"boot-source", NULL, false, M_PUT, boot_source, {0, PRE_BOOT}, "PUT"},
    {"drives", NULL, true, M_PUT | M_PATCH, drives, {0, PRE_BOOT, POST_BOOT}, "PUT, PATCH"},
    {"network-interfaces",
     NULL,
     true,
     M_PUT | M_PATCH,
     nets,
     {0, PRE_BOOT, POST_BOOT},
     "PUT, PATCH"},
    {"vsock", NULL, false, M_PUT, vsock, {0, PRE_BOOT}, "PUT"},
    {"entropy", NULL, false, M_PUT, entropy, {0, PRE_BOOT}, "PUT"},
    {"balloon",
     NULL,
     false,
     M_GET | M_PUT | M_PATCH,
     balloon,
     {ANY_TIME, PRE_BOOT, POST_BOOT},
     "GET, PUT, PATCH"},
    {"balloon",
     "statistics",
     false,
     M_GET | M_PATCH,
     balloon_statistics,
     {POST_BOOT, 0, POST_BOOT},
     "GET, PATCH"},
    {"balloon", "hinting/start", false, M_PATCH, hinting_start, {0, 0, POST_BOOT}, "PATCH"},
    {"balloon", "hinting/stop", false, M_PATCH, hinting_stop, {0, 0, POST_BOOT}, "PATCH"},
    {"balloon", "hinting/status", false, M_GET, hinting_status, {POST_BOOT}, "GET"},
    {"serial", NULL, false, M_PUT, serial, {0, PRE_BOOT}, "PUT"},
    {"logger", NULL, false, M_PUT, logger, {0, PRE_BOOT}, "PUT"},
    {"metrics", NULL, false, M_PUT, metrics, {0, PRE_BOOT}, "PUT"},
    {"actions", NULL, false, M_PUT, actions, {0}, "PUT"},
    {"vm", NULL, false, M_PATCH, vm_state, {0, 0, POST_BOOT}, "PATCH"},
    {"mmds", NULL, false, M_GET | M_PUT | M_PATCH, mmds, {0}, "GET, PUT, PATCH"},
    {"mmds", "config", false, M_PUT, mmds_config, {0, PRE_BOOT}, "PUT"},
    {"snapshot", "create", false, M_PUT, snapshot_create, {0, POST_BOOT}, "PUT"},
    {"snapshot", "load", false, M_PUT, snapshot_load, {0, PRE_BOOT}, "PUT"},
};

/* In Firecracker's API, not in sparkler's. */
static const struct {
	const char *path, *why;
} unsupported[] = {
    {"cpu-config", "sparkler has no custom CPU templates (machine-config's cpu_template)"},
    {"pmem", "sparkler has no virtio-pmem device"},
    {"hotplug", "sparkler has no memory hotplug"},
};

static int method_bit(const char *m)
{
	if (strcmp(m, "GET") == 0)
		return M_GET;
	if (strcmp(m, "PUT") == 0)
		return M_PUT;
	if (strcmp(m, "PATCH") == 0)
		return M_PATCH;
	return 0;
}

static int method_index(enum method m)
{
	return m == M_GET ? 0 : m == M_PUT ? 1 : 2;
}

/*
 * Split "/drives/rootfs" into "drives" and "rootfs" (Firecracker trims the
 * leading slashes and one trailing one). seg and rest are copies in buf.
 */
static void split_path(const char *url, char *buf, size_t n, char **seg, char **rest)
{
	char *slash;
	size_t len;

	while (*url == '/')
		url++;
	snprintf(buf, n, "%s", url);
	len = strlen(buf);
	if (len && buf[len - 1] == '/')
		buf[len - 1] = '\0';
	*seg = buf;
	*rest = NULL;
	slash = strchr(buf, '/');
	if (slash) {
		*slash = '\0';
		*rest = slash + 1;
	}
}

/* Does the rest of the path (after the first segment) fit r? */
static bool rest_matches(const struct route *r, const char *rest)
{
	if (!rest)
		return !r->sub;
	if (r->has_id)
		return strchr(rest, '/') == NULL;
	return r->sub && strcmp(rest, r->sub) == 0;
}

static const struct route *find_route(const char *seg, const char *rest)
{
	for (size_t i = 0; i < ARRAY_LEN(routes); i++)
		if (strcmp(routes[i].path, seg) == 0 && rest_matches(&routes[i], rest))
			return &routes[i];
	return NULL;
}

/* 404 or 405 when nothing matches: 405 when another method would. */
static const struct route *route_for(const char *seg, const char *rest, int m,
                                     struct spk_api_response *out, const char *method,
                                     const char *url)
{
	const struct route *r = find_route(seg, rest);

	for (size_t i = 0; !r && i < ARRAY_LEN(unsupported); i++)
		if (strcmp(seg, unsupported[i].path) == 0) {
			spk_api_fault(out, 400, "The requested operation is not supported: %s.",
			              unsupported[i].why);
			return NULL;
		}
	if (!r) {
		spk_api_fault(out, 404, "Invalid request method and/or path: %.16s %.200s.", method,
		              url);
		return NULL;
	}
	if (!(r->methods & m)) {
		spk_api_fault(out, 405, "Invalid request method and/or path: %.16s %.200s.", method,
		              url);
		out->allow = r->allow;
		return NULL;
	}
	return r;
}

static json_t *parse_body(const char *body, size_t len, struct spk_api_response *out)
{
	json_error_t je;
	json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);

	if (!j)
		spk_api_fault(out, 400,
		              "An error occurred when deserializing the json body of a request: "
		              "line %d column %d: %s.",
		              je.line, je.column, je.text);
	return j;
}

/* The pre-boot/post-boot rule and the "the VM has exited" rule. */
static bool allowed_now(struct req *q, const struct route *r)
{
	enum boot_rule rule = r->rule[method_index(q->method)];
	enum spk_api_state st = q->api->ops->state(q->api->ctx);

	if (st == SPK_API_EXITED && !(q->method == M_GET && r->fn != get_root)) {
		spk_api_fault(q->out, 400,
		              "The microVM has exited (%s); sparkler is shutting down.",
		              q->api->exit_reason[0] ? q->api->exit_reason : "it stopped");
		return false;
	}
	if (rule == PRE_BOOT && q->api->started) {
		spk_api_fault(q->out, 400, "%s", NOT_POST_BOOT);
		return false;
	}
	if (rule == POST_BOOT && !q->api->started) {
		spk_api_fault(q->out, 400, "%s", NOT_PRE_BOOT);
		return false;
	}
	return true;
}

static void dispatch(struct spk_api *api, const char *method, const char *url, const char *body,
                     size_t len, struct spk_api_response *out)
{
	char buf[1024], *seg, *rest;
	int m = method_bit(method);
	struct req q = {.api = api, .method = (enum method)m, .out = out};
	const struct route *r;
	struct spk_res_err e;

	split_path(url, buf, sizeof(buf), &seg, &rest);
	if (!(r = route_for(seg, rest, m, out, method, url)))
		return;
	if (m == M_GET && len) {
		spk_api_fault(out, 400, "GET request cannot have a body.");
		return;
	}
	/* hinting's start and stop may come without a body */
	if (m != M_GET && !len && r->fn != hinting_start && r->fn != hinting_stop) {
		spk_api_fault(out, 400, "Empty %s request.", method);
		return;
	}
	q.id = r->has_id ? (rest ? rest : "") : NULL;
	if (q.id && spk_res_check_id(q.id, &e) < 0) {
		spk_api_fault(out, 400, "%s", e.msg);
		return;
	}
	if (len && !(q.body = parse_body(body, len, out)))
		return;
	if (allowed_now(&q, r))
		r->fn(&q);
	json_decref(q.body);
}

static void count(struct spk_api_stats *s, unsigned status)
{
	s->requests++;
	if (status < 300)
		s->ok++;
	else if (status < 500)
		s->client_errors++;
	else
		s->server_errors++;
}

void spk_api_handle(struct spk_api *api, const char *method, const char *url, const char *body,
                    size_t len, struct spk_api_response *out)
{
	*out = (struct spk_api_response){0};
	pthread_mutex_lock(&api->lock);
	spk_log(SPK_LOG_INFO, "The API server received a %.16s request on \"%.200s\".", method,
	        url);
	if (len && body)
		spk_log(SPK_LOG_DEBUG, "Request body: %.*s", len > 512 ? 512 : (int)len, body);
	dispatch(api, method, url, len ? body : NULL, len, out);
	count(&api->stats, out->status);
	if (out->status >= 400)
		spk_log(SPK_LOG_INFO, "Received Error. Status code: %u. Message: %s", out->status,
		        out->body ? out->body : "");
	pthread_mutex_unlock(&api->lock);
}

void spk_api_init(struct spk_api *api, const struct spk_api_ops *ops, void *ctx, const char *id)
{
	memset(api, 0, sizeof(*api));
	pthread_mutex_init(&api->lock, NULL);
	spk_res_init(&api->res);
	api->ops = ops;
	api->ctx = ctx;
	snprintf(api->id, sizeof(api->id), "%s", id);
}

void spk_api_destroy(struct spk_api *api)
{
	spk_res_free(&api->res);
	pthread_mutex_destroy(&api->lock);
}
