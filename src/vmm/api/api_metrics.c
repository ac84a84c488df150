/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Metrics and logs of `sparkler --api-sock`.
 *
 * Metrics: one JSON object per line, appended to the metrics path: at
 * InstanceStart, every minute, on FlushMetrics and at exit. Counters are
 * what happened since the previous line, as Firecracker writes them (its
 * counters reset at each flush): the totals of the last line are kept and
 * subtracted. Gauges (state, uptime) are as they are.
 *
 * Logs: the library's log lines (and the API's) go through spk_log_set()
 * to the logger's path as "TIME [ID:THREAD:LEVEL] message", one write(2)
 * per line. The library calls the logger under its own lock, and
 * spk_log_set() returns only once no thread is inside the old one, so a
 * new sink is swapped in without a lock of ours.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sparkler/log.h>
#include <sparkler/sparkler.h>

#include "mmds/mmds.h"
#include "vmm/api/api.h"

#define LOG_LINE 1200
#define MAX_DEVS 48 /* legacy devices counted in the metrics */

struct log_sink {
	int fd;
	bool show_level, show_origin;
	char id[SPK_MACHINE_ID_MAX];
};

struct spk_obs {
	pthread_mutex_t lock; /* the metrics fields and m */
	char id[SPK_MACHINE_ID_MAX];
	struct timespec start;
	struct log_sink *sink;
	int metrics_fd;
	struct spk_metrics_config metrics;
	struct spk_machine *m;
	/* the totals at the previous line, for the differences */
	struct spk_api_stats last_api;
	uint64_t last_exits[SPK_EXIT__COUNT];
	struct spk_machine_dev_count last_dev[MAX_DEVS];
	size_t n_last_dev;
	struct spk_mmds *mmds;
	struct spk_mmds_metrics last_mmds;
	struct spk_virtio_balloon_stats last_balloon;
};

/* now - before, or now when the total went down (a new VM after a failed
 * start counts from zero again). */
static uint64_t since(uint64_t now, uint64_t before)
{
	return now >= before ? now - before : now;
}

/* A file or FIFO to append lines to; a FIFO without a reader is refused
 * rather than waited for, and writes never block. */
static int open_append(const char *path, const char *what, char *err, size_t len)
{
	int fd =
	    open(path, O_WRONLY | O_CREAT | O_APPEND | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0644);

	if (fd < 0)
		snprintf(err, len, "%s %s: %s", what, path,
		         errno == ENXIO ? "a FIFO nobody reads" : strerror(errno));
	return fd < 0 ? -errno : fd;
}

static void write_line(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* full FIFO or a broken file: the line is dropped */
		s += w;
		n -= (size_t)w;
	}
}

/* ---- logs ------------------------------------------------------------------ */

static const char *level_word(enum spk_log_level l)
{
	static const char *const w[] = {"ERROR", "WARN", "INFO", "DEBUG"};

	return (unsigned)l < 4 ? w[l] : "LOG";
}

static void sink_log(enum spk_log_level level, const char *msg, void *opaque)
{
	struct log_sink *s = opaque;
	char line[LOG_LINE], thread[16] = "?", when[32], origin[160] = "";
	struct timespec now;
	struct tm tm;
	int n, at;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	pthread_getname_np(pthread_self(), thread, sizeof(thread));
	if (s->show_origin) { /* Firecracker's ":file:line" of the log call */
		const char *file = spk_log_origin(&at);

		if (file)
			snprintf(origin, sizeof(origin), ":%.120s:%d", file, at);
		else
			snprintf(origin, sizeof(origin), ":sparkler");
	}
	n = snprintf(line, sizeof(line), "%s.%09ld [%s:%s%s%s%s] %s\n", when, now.tv_nsec, s->id,
	             thread, s->show_level ? ":" : "", s->show_level ? level_word(level) : "",
	             origin, msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	write_line(s->fd, line, (size_t)n);
}

static void drop_log(enum spk_log_level level, const char *msg, void *opaque)
{
}

static enum spk_log_level lib_level(enum spk_res_log_level l)
{
	switch (l) {
	case SPK_RES_LOG_OFF:
	case SPK_RES_LOG_ERROR:
		return SPK_LOG_ERROR;
	case SPK_RES_LOG_WARNING:
		return SPK_LOG_WARN;
	case SPK_RES_LOG_INFO:
		return SPK_LOG_INFO;
	case SPK_RES_LOG_DEBUG:
	case SPK_RES_LOG_TRACE:
		break;
	}
	return SPK_LOG_DEBUG;
}

int spk_obs_set_logger(struct spk_obs *o, struct spk_logger_config *cfg, char *err, size_t len)
{
	struct log_sink *s = calloc(1, sizeof(*s)), *old = o->sink;

	if (!s) {
		snprintf(err, len, "out of memory");
		return -ENOMEM;
	}
	s->fd = cfg->path ? open_append(cfg->path, "log_path", err, len) : dup(STDERR_FILENO);
	if (s->fd < 0) {
		int rc = s->fd;

		free(s);
		return rc;
	}
	s->show_level = cfg->show_level;
	s->show_origin = cfg->show_origin;
	memcpy(s->id, o->id, sizeof(s->id));
	if (cfg->level == SPK_RES_LOG_OFF)
		spk_log_set(drop_log, NULL, SPK_LOG_ERROR);
	else
		spk_log_set(sink_log, s, lib_level(cfg->level));
	o->sink = s;
	if (old) { /* nobody is inside it any more */
		close(old->fd);
		free(old);
	}
	return 0;
}

/* ---- metrics --------------------------------------------------------------- */

int spk_obs_set_metrics(struct spk_obs *o, struct spk_metrics_config *cfg, char *err, size_t len)
{
	int fd = open_append(cfg->path, "metrics_path", err, len);

	if (fd < 0)
		return fd;
	pthread_mutex_lock(&o->lock);
	if (o->metrics_fd >= 0)
		close(o->metrics_fd);
	spk_res_metrics_free(&o->metrics);
	o->metrics_fd = fd;
	o->metrics = (struct spk_metrics_config){
	    .set = true, .emit_id = cfg->emit_id, .properties = json_incref(cfg->properties)};
	pthread_mutex_unlock(&o->lock);
	return 0;
}

bool spk_obs_has_metrics(struct spk_obs *o)
{
	pthread_mutex_lock(&o->lock);
	bool has = o->metrics_fd >= 0;
	pthread_mutex_unlock(&o->lock);
	return has;
}

void spk_obs_set_machine(struct spk_obs *o, struct spk_machine *m)
{
	pthread_mutex_lock(&o->lock);
	o->m = m;
	pthread_mutex_unlock(&o->lock);
}

void spk_obs_set_mmds(struct spk_obs *o, struct spk_mmds *m)
{
	pthread_mutex_lock(&o->lock);
	o->mmds = m;
	pthread_mutex_unlock(&o->lock);
}

/* Firecracker's "mmds" group, each counter since the previous line. */
static json_t *mmds_json(struct spk_obs *o)
{
	static const struct {
		const char *name;
		size_t off;
	} f[] = {
#define F(x) {#x, offsetof(struct spk_mmds_metrics, x)}
	    F(rx_accepted),
	    F(rx_accepted_err),
	    F(rx_accepted_unusual),
	    F(rx_bad_eth),
	    F(rx_count),
	    F(rx_invalid_token),
	    F(rx_no_token),
	    F(tx_bytes),
	    F(tx_count),
	    F(tx_errors),
	    F(tx_frames),
	    F(connections_created),
	    F(connections_destroyed),
#undef F
	};
	struct spk_mmds_metrics now;
	json_t *j = json_object();

	spk_mmds_get_metrics(o->mmds, &now);
	for (size_t i = 0; j && i < sizeof(f) / sizeof(f[0]); i++) {
		uint64_t n = *(const uint64_t *)((const char *)&now + f[i].off);
		uint64_t l = *(const uint64_t *)((const char *)&o->last_mmds + f[i].off);

		json_object_set_new(j, f[i].name, json_integer((json_int_t)since(n, l)));
	}
	o->last_mmds = now;
	return j;
}

static const char *state_word(enum spk_api_state st)
{
	static const char *const w[] = {"Not started", "Running", "Paused", "Exited"};

	return (unsigned)st < 4 ? w[st] : "?";
}

static json_t *exits_json(struct spk_obs *o)
{
	uint64_t counts[SPK_EXIT__COUNT] = {0}, total = 0;
	json_t *j = json_object();
	char name[32];

	if (o->m)
		spk_machine_exit_counts(o->m, counts);
	for (int k = 0; k < SPK_EXIT__COUNT; k++) {
		uint64_t d = since(counts[k], o->last_exits[k]);
		size_t i;

		snprintf(name, sizeof(name), "%s", spk_exit_name((enum spk_exit_kind)k));
		for (i = 0; name[i]; i++)
			name[i] = (char)tolower((unsigned char)name[i]);
		json_object_set_new(j, name, json_integer((json_int_t)d));
		total += d;
		o->last_exits[k] = counts[k];
	}
	return json_pack("{s:o, s:I}", "exits", j, "exits_total", (json_int_t)total);
}

/* The previous line's counts of the device called name (none: zeros). */
static const struct spk_machine_dev_count *last_dev(const struct spk_obs *o, const char *name)
{
	static const struct spk_machine_dev_count none;

	for (size_t i = 0; i < o->n_last_dev; i++)
		if (strcmp(o->last_dev[i].name, name) == 0)
			return &o->last_dev[i];
	return &none;
}

static json_t *devices_json(struct spk_obs *o)
{
	struct spk_machine_dev_count c[MAX_DEVS];
	json_t *j = json_object();
	size_t n = o->m ? spk_machine_device_counts(o->m, c, MAX_DEVS) : 0;

	if (n > MAX_DEVS)
		n = MAX_DEVS;
	for (size_t i = 0; i < n; i++) {
		const struct spk_machine_dev_count *l = last_dev(o, c[i].name);

		json_object_set_new(j, c[i].name,
		                    json_pack("{s:I, s:I}", "reads",
		                              (json_int_t)since(c[i].reads, l->reads), "writes",
		                              (json_int_t)since(c[i].writes, l->writes)));
	}
	memcpy(o->last_dev, c, n * sizeof(c[0]));
	o->n_last_dev = n;
	return j;
}

/* Firecracker's balloon metrics (counters since the last line), and what
 * the balloon holds now; NULL without a running balloon. */
static json_t *balloon_json(struct spk_obs *o)
{
	struct spk_virtio_balloon_stats b;
	const struct spk_virtio_balloon_stats *l = &o->last_balloon;
	json_t *j;

	if (!o->m || spk_machine_balloon_stats(o->m, &b) < 0)
		return NULL;
	j = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "inflate_count",
	              (json_int_t)since(b.inflate_chains, l->inflate_chains), "deflate_count",
	              (json_int_t)since(b.deflate_chains, l->deflate_chains), "stats_updates_count",
	              (json_int_t)since(b.stats_updates, l->stats_updates), "stats_update_fails",
	              (json_int_t)since(b.stats_update_fails, l->stats_update_fails),
	              "free_page_report_count", (json_int_t)since(b.reports, l->reports),
	              "free_page_report_freed",
	              (json_int_t)since(b.reported_bytes, l->reported_bytes), "bad_pfns",
	              (json_int_t)since(b.bad_pfns, l->bad_pfns), "target_pages",
	              (json_int_t)b.target_pages, "actual_pages", (json_int_t)b.actual_pages);
	if (j) {
		json_object_set_new(j, "free_page_hint_count",
		                    json_integer((json_int_t)since(b.hints, l->hints)));
		json_object_set_new(
		    j, "free_page_hint_freed",
		    json_integer((json_int_t)since(b.hinted_bytes, l->hinted_bytes)));
	}
	o->last_balloon = b;
	return j;
}

static json_t *metrics_line(struct spk_obs *o, const struct spk_api_stats *st,
                            enum spk_api_state vm, const char *why)
{
	struct timespec now, mono;
	json_t *line;

	clock_gettime(CLOCK_REALTIME, &now);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	line = json_pack(
	    "{s:I, s:s, s:{s:s, s:s, s:I}, s:{s:I, s:I, s:I, s:I}, s:o, s:o}", "utc_timestamp_ms",
	    (json_int_t)now.tv_sec * 1000 + now.tv_nsec / 1000000, "event", why, "vmm", "version",
	    SPARKLER_VERSION, "state", state_word(vm), "uptime_ms",
	    (json_int_t)(mono.tv_sec - o->start.tv_sec) * 1000 +
	        (mono.tv_nsec - o->start.tv_nsec) / 1000000,
	    "api_server", "requests", (json_int_t)since(st->requests, o->last_api.requests), "ok",
	    (json_int_t)since(st->ok, o->last_api.ok), "client_errors",
	    (json_int_t)since(st->client_errors, o->last_api.client_errors), "server_errors",
	    (json_int_t)since(st->server_errors, o->last_api.server_errors), "vcpu", exits_json(o),
	    "devices", devices_json(o));
	o->last_api = *st;
	if (line && o->mmds)
		json_object_set_new(line, "mmds", mmds_json(o));
	json_t *balloon = balloon_json(o);
	if (line && balloon)
		json_object_set_new(line, "balloon", balloon);
	else
		json_decref(balloon);
	if (line && o->metrics.emit_id)
		json_object_set_new(line, "id", json_string(o->id));
	if (line && o->metrics.properties)
		json_object_set(line, "properties", o->metrics.properties);
	return line;
}

int spk_obs_flush(struct spk_obs *o, const struct spk_api_stats *stats, enum spk_api_state st,
                  const char *why, char *err, size_t len)
{
	json_t *line;
	char *s = NULL;
	int rc = 0;

	pthread_mutex_lock(&o->lock);
	if (o->metrics_fd < 0) {
		snprintf(err, len, "the metrics are not configured (PUT /metrics first)");
		rc = -ENOENT;
	} else {
		line = metrics_line(o, stats, st, why);
		s = line ? json_dumps(line, JSON_COMPACT) : NULL;
		json_decref(line);
		if (!s) {
			snprintf(err, len, "out of memory");
			rc = -ENOMEM;
		}
	}
	if (s) {
		size_t n = strlen(s);

		s[n] = '\n'; /* over the NUL: the buffer has n + 1 bytes */
		write_line(o->metrics_fd, s, n + 1);
		free(s);
	}
	pthread_mutex_unlock(&o->lock);
	return rc;
}

/* ---- life --------------------------------------------------------------------- */

int spk_obs_new(const char *instance_id, struct spk_obs **out)
{
	struct spk_obs *o = calloc(1, sizeof(*o));

	if (!o)
		return -ENOMEM;
	pthread_mutex_init(&o->lock, NULL);
	snprintf(o->id, sizeof(o->id), "%s", instance_id);
	clock_gettime(CLOCK_MONOTONIC, &o->start);
	o->metrics_fd = -1;
	*out = o;
	return 0;
}

void spk_obs_free(struct spk_obs *o)
{
	if (!o)
		return;
	if (o->sink) {
		spk_log_set(NULL, NULL, SPK_LOG_WARN); /* back to stderr */
		close(o->sink->fd);
		free(o->sink);
	}
	if (o->metrics_fd >= 0)
		close(o->metrics_fd);
	spk_res_metrics_free(&o->metrics);
	pthread_mutex_destroy(&o->lock);
	free(o);
}
