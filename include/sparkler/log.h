/* SPDX-License-Identifier: Apache-2.0 */
/* Logging and error messages of the library. */
#ifndef SPARKLER_LOG_H
#define SPARKLER_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

enum spk_log_level {
	SPK_LOG_ERROR = 0,
	SPK_LOG_WARN,
	SPK_LOG_INFO,
	SPK_LOG_DEBUG,
};

typedef void (*spk_log_fn)(enum spk_log_level level, const char *msg, void *opaque);

/*
 * Send the library's log lines at or above max (ERROR is the most severe)
 * to fn. By default ERROR and WARN lines go to stderr as
 * "sparkler: <level>: <msg>". fn NULL restores the default.
 */
void spk_log_set(spk_log_fn fn, void *opaque, enum spk_log_level max);

/* Log a line through the library's logger (for devices and embedders). */
void spk_log(enum spk_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * The same, naming the source file and line of the call; spk_log() is a
 * macro that passes __FILE__ and __LINE__ (the function stays for callers
 * that take its address or #undef it: no origin then).
 */
void spk_log_at(const char *file, int line, enum spk_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define spk_log(level, ...) spk_log_at(__FILE__, __LINE__, (level), __VA_ARGS__)

/*
 * Inside a spk_log_fn: the source file of the line being logged (from the
 * first "src/" or "include/" on, or as given) and its line through *line;
 * NULL and 0 when the caller gave none. Only valid during that call.
 */
const char *spk_log_origin(int *line);

/*
 * The message of the last call that failed on this thread (every function
 * returning -errno sets it), or "" if none did.
 */
const char *spk_last_error(void);

#ifdef __cplusplus
}
#endif
#endif
