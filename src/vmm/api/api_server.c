/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTP/1.1 on a Unix socket, through libmicrohttpd: one internal thread
 * multiplexes every connection with epoll/poll, so a client that sends
 * slowly, or not at all, holds only its own connection (closed after
 * SPK_API_CONN_TIMEOUT_S of silence) and never the VM, whose vCPUs run on
 * threads of their own. A body is collected up to max_body bytes; a longer
 * one is refused with 400 (Firecracker's answer) once it has been read and
 * dropped, or at once when it is far too long.
 *
 * The inactivity timeout alone lets a client that sends a byte every few
 * seconds hold its connection for ever, and SPK_API_MAX_CONNECTIONS such
 * clients would lock everyone else out. So a watchdog thread also cuts
 * (shutdown(2)) every connection whose request has not been answered
 * SPK_API_REQUEST_DEADLINE_S after the connection opened or its previous
 * answer, the handler's own time excepted. libmicrohttpd tells us when a
 * connection starts and closes (it reports the close before it closes the
 * fd, and we drop the entry under the lock the watchdog holds, so the
 * watchdog never shuts down a reused fd number).
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include <sparkler/log.h>

#include "vmm/api/api.h"
#include "vmm/api/mhd.h"
#include "vmm/confine/seccomp_policy.h"
#include "vmm/vmm.h"

#define DRAIN_MS 1000
#define WATCH_MS 500 /* how often the watchdog looks */
/* A body too long is read to its end (and dropped) before the refusal,
 * unless it is longer than this many times the limit: then it is refused
 * from its Content-Length, or (chunked) the connection is closed. */
#define DISCARD_FACTOR 64

/* libmicrohttpd's functions, loaded by the first spk_api_server_start() */
static const struct spk_mhd *mhd;

struct spk_api_server {
	struct spk_api *api;
	struct MHD_Daemon *daemon;
	int listen_fd;
	char *path;
	dev_t dev; /* of the socket file we made: only that one is removed */
	ino_t ino;
	size_t max_body;
	atomic_int in_flight; /* requests begun, not yet answered */
	/* the connections and their deadlines */
	pthread_mutex_t lock; /* conns, stopping */
	pthread_cond_t wake;
	struct conn *conns;
	bool stopping, watching;
	pthread_t watcher;
};

/* One open connection. */
struct conn {
	struct conn *next, **pprev;
	int fd;
	int64_t since_ms;   /* opened, or its last request answered */
	bool in_handler;    /* the API is working on its request */
	bool cut;
};

/* One request's body, collected across calls of the access handler. */
struct upload {
	char *buf;
	size_t len, cap;
	uint64_t seen; /* bytes offered, kept or not */
	bool too_big;
	bool answered; /* refused from its Content-Length, before the body */
};

/* ---- deadlines ------------------------------------------------------------------ */

static int64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **ctx,
                          enum MHD_ConnectionNotificationCode code)
{
	struct spk_api_server *s = cls;
	struct conn *k = *ctx;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *fd =
		    mhd->get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);

		if (!(k = calloc(1, sizeof(*k))))
			return; /* unwatched: only the inactivity timeout applies */
		k->fd = fd ? fd->connect_fd : -1;
		k->since_ms = now_ms();
		pthread_mutex_lock(&s->lock);
		k->next = s->conns;
		k->pprev = &s->conns;
		if (s->conns)
			s->conns->pprev = &k->next;
		s->conns = k;
		pthread_mutex_unlock(&s->lock);
		*ctx = k;
	} else if (k) { /* closed: before libmicrohttpd closes the fd */
		pthread_mutex_lock(&s->lock);
		*k->pprev = k->next;
		if (k->next)
			k->next->pprev = k->pprev;
		pthread_mutex_unlock(&s->lock);
		free(k);
		*ctx = NULL;
	}
}

static struct conn *conn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *i =
	    mhd->get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return i ? i->socket_context : NULL;
}

/* The handler starts (busy) or a request was answered (!busy). */
static void conn_mark(struct spk_api_server *s, struct MHD_Connection *c, bool busy)
{
	struct conn *k = conn_of(c);

	if (!k)
		return;
	pthread_mutex_lock(&s->lock);
	k->in_handler = busy;
	k->since_ms = now_ms();
	pthread_mutex_unlock(&s->lock);
}

static void *watch(void *arg)
{
	struct spk_api_server *s = arg;

	pthread_setname_np(pthread_self(), "api-watch");
	/* on top of the API process's list: a timed wait and shutdown(2) */
	spk_seccomp_install_or_die(SPK_SECCOMP_TIMER, "api-watch");
	pthread_mutex_lock(&s->lock);
	while (!s->stopping) {
		struct timespec until;
		int64_t now;

		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += WATCH_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&s->wake, &s->lock, &until);
		now = now_ms();
		for (struct conn *k = s->conns; k; k = k->next) {
			if (k->cut || k->in_handler || k->fd < 0 ||
			    now - k->since_ms < SPK_API_REQUEST_DEADLINE_S * 1000)
				continue;
			k->cut = true;
			shutdown(k->fd, SHUT_RDWR); /* libmicrohttpd sees the end and closes it */
			spk_log(SPK_LOG_INFO,
			        "http: a request not complete after %d s: connection closed",
			        SPK_API_REQUEST_DEADLINE_S);
		}
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* ---- the socket file ------------------------------------------------------- */

/* Someone listens on path: a live socket, not a stale one. */
static bool socket_alive(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool alive;

	if (fd < 0)
		return true; /* cannot tell: do not remove it */
	alive = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 || errno != ECONNREFUSED;
	close(fd);
	return alive;
}

static int clear_path(const struct sockaddr_un *sa, char *err, size_t n)
{
	struct stat st;

	if (lstat(sa->sun_path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, n, "--api-sock %s: %s", sa->sun_path, strerror(errno));
		return -errno;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, n, "--api-sock %s: exists and is not a socket; not replacing it",
		         sa->sun_path);
		return -EEXIST;
	}
	if (socket_alive(sa)) {
		snprintf(err, n, "--api-sock %s: another process is listening on it", sa->sun_path);
		return -EADDRINUSE;
	}
	if (unlink(sa->sun_path) < 0) {
		snprintf(err, n, "--api-sock %s: cannot remove the stale socket: %s", sa->sun_path,
		         strerror(errno));
		return -errno;
	}
	spk_log(SPK_LOG_INFO, "removed the stale socket %s", sa->sun_path);
	return 0;
}

static int listen_on(struct spk_api_server *s, const char *path, char *err, size_t n)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	char why[160];
	int fd, rc;

	if (!*path || strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, n, "--api-sock %s: a Unix socket path needs 1 to %zu bytes", path,
		         sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path));
	if ((rc = clear_path(&sa, err, n)) < 0)
		return rc;
	/* the file appears only once it accepts: a client that waits for it
	 * and connects at once is never refused */
	fd = spk_listen_unix(path, SOCK_NONBLOCK, 64, why, sizeof(why));
	if (fd < 0) {
		snprintf(err, n, "--api-sock %s: %s", path, why);
		return fd;
	}
	if (stat(path, &st) < 0) {
		rc = -errno;
		snprintf(err, n, "--api-sock %s: %s", path, strerror(errno));
		close(fd);
		return rc;
	}
	s->listen_fd = fd;
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	return 0;
}

static void remove_socket(struct spk_api_server *s)
{
	struct stat st;

	if (lstat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino)
		unlink(s->path);
}

/* ---- requests ---------------------------------------------------------------- */

static enum MHD_Result send_response(struct MHD_Connection *c, struct spk_api_response *r)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (r->body) {
		resp = mhd->create_response_from_buffer(strlen(r->body), r->body,
		                                       MHD_RESPMEM_MUST_FREE);
		if (!resp) {
			spk_api_response_free(r);
			return MHD_NO;
		}
		r->body = NULL; /* MHD frees it */
		mhd->add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	} else {
		resp = mhd->create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
		if (!resp)
			return MHD_NO;
	}
	if (r->allow)
		mhd->add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
	if (r->deprecated)
		mhd->add_response_header(resp, "Deprecation", "true");
	ret = mhd->queue_response(c, r->status, resp);
	mhd->destroy_response(resp);
	return ret;
}

static enum MHD_Result too_big(struct spk_api_server *s, struct MHD_Connection *c, uint64_t size)
{
	struct spk_api_response r = {0};

	spk_api_fault(&r, 400,
	              "Request payload with size %llu is larger than the limit of %zu allowed by "
	              "server.",
	              (unsigned long long)size, s->max_body);
	return send_response(c, &r);
}

/* First call for a request: the headers are in. */
static enum MHD_Result begin(struct spk_api_server *s, struct MHD_Connection *c, void **cls)
{
	const char *cl =
	    mhd->lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	struct upload *u = calloc(1, sizeof(*u));

	if (!u)
		return MHD_NO;
	*cls = u;
	atomic_fetch_add(&s->in_flight, 1);
	if (cl) {
		unsigned long long n = strtoull(cl, NULL, 10);

		/* Refuse a body far too long before reading it (MHD then closes
		 * the connection). A body just too long is read and dropped
		 * first: closing a Unix socket with unread data makes the
		 * client's read fail with ECONNRESET, and the answer is lost. */
		if (n > DISCARD_FACTOR * (uint64_t)s->max_body) {
			u->too_big = u->answered = true;
			return too_big(s, c, n);
		}
	}
	return MHD_YES;
}

static void take(struct spk_api_server *s, struct upload *u, const char *data, size_t n)
{
	u->seen += n;
	if (u->too_big || u->len + n > s->max_body) {
		u->too_big = true;
		return;
	}
	if (u->len + n > u->cap) {
		size_t cap = u->cap ? u->cap * 2 : 1024;
		char *nb;

		while (cap < u->len + n)
			cap *= 2;
		nb = realloc(u->buf, cap);
		if (!nb) {
			u->too_big = true;
			return;
		}
		u->buf = nb;
		u->cap = cap;
	}
	memcpy(u->buf + u->len, data, n);
	u->len += n;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **req_cls)
{
	struct spk_api_server *s = cls;
	struct upload *u = *req_cls;
	struct spk_api_response r;

	if (!u)
		return begin(s, c, req_cls);
	if (*size) {
		take(s, u, data, *size);
		*size = 0;
		/* MHD answers only once the body is in: read on, keep nothing,
		 * and give up on a sender that does not stop */
		return u->seen > DISCARD_FACTOR * (uint64_t)s->max_body ? MHD_NO : MHD_YES;
	}
	if (u->answered)
		return MHD_YES;
	if (u->too_big)
		return too_big(s, c, u->seen);
	conn_mark(s, c, true);
	spk_api_handle(s->api, method, url, u->buf, u->len, &r);
	conn_mark(s, c, false);
	return send_response(c, &r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode why)
{
	struct spk_api_server *s = cls;
	struct upload *u = *req_cls;

	if (!u)
		return;
	free(u->buf);
	free(u);
	*req_cls = NULL;
	atomic_fetch_sub(&s->in_flight, 1);
	conn_mark(s, c, false); /* the next request's deadline starts now */
}

/* libmicrohttpd hands us its own format strings */
static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];

	vsnprintf(line, sizeof(line), fmt, ap);
	line[strcspn(line, "\n")] = '\0';
	spk_log(SPK_LOG_INFO, "http: %s", line);
}

/* ---- start / stop ------------------------------------------------------------------- */

int spk_api_server_start(struct spk_api *api, const char *path, size_t max_body,
                         struct spk_api_server **out, char *err, size_t errlen)
{
	struct spk_api_server *s = calloc(1, sizeof(*s));
	int rc;

	if (!s || !(s->path = strdup(path))) {
		free(s);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (!(mhd = spk_mhd_load(err, errlen))) {
		free(s->path);
		free(s);
		return -ENOENT;
	}
	s->api = api;
	s->max_body = max_body;
	s->listen_fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&s->wake, &ca);
		pthread_condattr_destroy(&ca);
	}
	if ((rc = listen_on(s, path, err, errlen)) < 0)
		goto err_free;
	s->daemon = mhd->start_daemon(
	    MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG, 0, NULL, NULL,
	    on_request, s, MHD_OPTION_LISTEN_SOCKET, s->listen_fd, MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned int)SPK_API_CONN_TIMEOUT_S, MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned int)SPK_API_MAX_CONNECTIONS, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
	    MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
	    s, MHD_OPTION_END);
	if (!s->daemon) {
		snprintf(err, errlen, "--api-sock %s: the HTTP server did not start", path);
		rc = -EIO;
		goto err_close;
	}
	if ((rc = pthread_create(&s->watcher, NULL, watch, s)) != 0) {
		mhd->stop_daemon(s->daemon);
		snprintf(err, errlen, "--api-sock %s: no thread for the request deadlines: %s", path,
		         strerror(rc));
		rc = -rc;
		goto err_close;
	}
	s->watching = true;
	*out = s;
	return 0;

err_close:
	remove_socket(s);
	close(s->listen_fd);
err_free:
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->lock);
	free(s->path);
	free(s);
	return rc;
}

void spk_api_server_stop(struct spk_api_server *s)
{
	struct timespec step = {0, 5L * 1000 * 1000};

	if (!s)
		return;
	remove_socket(s);
	mhd->quiesce_daemon(s->daemon); /* no new connections */
	close(s->listen_fd);
	for (int waited = 0; atomic_load(&s->in_flight) > 0 && waited < DRAIN_MS; waited += 5)
		nanosleep(&step, NULL);
	mhd->stop_daemon(s->daemon); /* every connection reported closed */
	if (s->watching) {
		pthread_mutex_lock(&s->lock);
		s->stopping = true;
		pthread_cond_signal(&s->wake);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->watcher, NULL);
	}
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->lock);
	free(s->path);
	free(s);
}
