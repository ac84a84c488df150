// SPDX-License-Identifier: Apache-2.0
/*
 * Logging and the per-thread "last error" message.
 *
 * Every vCPU thread may log at once, so the logger configuration is read
 * under a lock, and the default writer emits each line with one write(2):
 * stderr is shared, and separate writes for prefix and message would let
 * lines of two threads interleave.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"

/* One formatted log line; longer messages are truncated. */
#define LOG_LINE_MAX 1024
/* spk_last_error() buffer, per thread. */
#define LAST_ERROR_MAX 256

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static spk_log_fn log_fn; /* NULL: the stderr writer */
static void *log_opaque;
/* Read without the lock on the fast path, so that a DEBUG line nobody
 * wants costs one atomic load and no formatting. */
static int log_max = SPK_LOG_WARN;

static __thread char last_error[LAST_ERROR_MAX];
/* Set while this thread is inside a custom logger: a logger that logs
 * (directly or through a failing library call) must not deadlock. */
static __thread bool in_logger;
/* The file and line of the spk_log_at() call being delivered, if any. */
static __thread const char *origin_file;
static __thread int origin_line;

static const char *level_name(enum spk_log_level level)
{
	switch (level) {
	case SPK_LOG_ERROR:
		return "error";
	case SPK_LOG_WARN:
		return "warning";
	case SPK_LOG_INFO:
		return "info";
	case SPK_LOG_DEBUG:
		return "debug";
	}
	return "log";
}

/* Write all of buf to fd, retrying on EINTR and short writes. */
static void write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

/* The default logger: "sparkler: <level>: <msg>\n" to stderr, one write. */
static void log_stderr(enum spk_log_level level, const char *msg)
{
	char line[LOG_LINE_MAX + 32];
	int n;

	n = snprintf(line, sizeof(line), "sparkler: %s: %s\n", level_name(level), msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		/* Truncated: keep the line a line. */
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	write_all(STDERR_FILENO, line, (size_t)n);
}

void spk_log_set(spk_log_fn fn, void *opaque, enum spk_log_level max)
{
	if ((int)max < SPK_LOG_ERROR)
		max = SPK_LOG_ERROR;
	if (max > SPK_LOG_DEBUG)
		max = SPK_LOG_DEBUG;
	pthread_mutex_lock(&log_lock);
	log_fn = fn;
	log_opaque = fn ? opaque : NULL;
	__atomic_store_n(&log_max, (int)max, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&log_lock);
}

/* Drop trailing newlines: the writer ends every line itself. */
static void strip_newlines(char *msg)
{
	size_t len = strlen(msg);

	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == '\r'))
		msg[--len] = '\0';
}

/*
 * Hand a formatted message to the logger. The custom logger is called
 * with the lock held, so that once spk_log_set() returns no thread is
 * still inside the previous logger (its opaque may be freed).
 */
static void log_emit(enum spk_log_level level, const char *msg)
{
	if (in_logger) {
		/* Re-entered from a custom logger: stderr only, no lock. */
		if (level <= SPK_LOG_WARN)
			log_stderr(level, msg);
		return;
	}
	pthread_mutex_lock(&log_lock);
	if ((int)level > __atomic_load_n(&log_max, __ATOMIC_RELAXED)) {
		pthread_mutex_unlock(&log_lock);
		return;
	}
	if (log_fn) {
		in_logger = true;
		log_fn(level, msg, log_opaque);
		in_logger = false;
	} else {
		log_stderr(level, msg);
	}
	pthread_mutex_unlock(&log_lock);
}

static void __attribute__((format(printf, 2, 0)))
log_vformat(enum spk_log_level level, const char *fmt, va_list ap)
{
	char msg[LOG_LINE_MAX];
	int saved_errno = errno;

	if ((int)level > __atomic_load_n(&log_max, __ATOMIC_RELAXED))
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	strip_newlines(msg);
	log_emit(level, msg);
	errno = saved_errno;
}

void(spk_log)(enum spk_log_level level, const char *fmt, ...)
{
	va_list ap;

	if (!fmt)
		return;
	va_start(ap, fmt);
	log_vformat(level, fmt, ap);
	va_end(ap);
}

void spk_log_at(const char *file, int line, enum spk_log_level level, const char *fmt, ...)
{
	const char *saved_file = origin_file;
	int saved_line = origin_line;
	va_list ap;

	if (!fmt)
		return;
	origin_file = file;
	origin_line = line;
	va_start(ap, fmt);
	log_vformat(level, fmt, ap);
	va_end(ap);
	origin_file = saved_file;
	origin_line = saved_line;
}

const char *spk_log_origin(int *line)
{
	const char *f = origin_file, *p;

	if (line)
		*line = f ? origin_line : 0;
	if (!f)
		return NULL;
	/* the build gives "../src/x.c" or an absolute path: from src/ on */
	for (p = f; *p; p++)
		if ((p == f || p[-1] == '/') &&
		    (!strncmp(p, "src/", 4) || !strncmp(p, "include/", 8) ||
		     !strncmp(p, "tests/", 6)))
			return p;
	return f;
}

const char *spk_last_error(void)
{
	return last_error;
}

void spk_clear_error(void)
{
	last_error[0] = '\0';
}

int spk_fail_impl(int err, const char *fmt, ...)
{
	int saved_errno = errno;
	va_list ap;

	/*
	 * Callers return the result as -errno: a slip that passes -EINVAL,
	 * or 0, must still give the caller's caller a negative value.
	 */
	if (err < 0)
		err = -err;
	if (err == 0)
		err = EIO;
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	strip_newlines(last_error);
	spk_log(SPK_LOG_DEBUG, "%s", last_error);
	errno = saved_errno;
	return -err;
}

int spk_fail_const(int err, const char *msg)
{
	size_t i = 0;

	/* async-signal-safe: no formatting, no logging, no locks */
	for (; msg && msg[i] && i < LAST_ERROR_MAX - 1; i++)
		last_error[i] = msg[i];
	last_error[i] = '\0';
	if (err < 0)
		err = -err;
	return err ? -err : -EIO;
}
